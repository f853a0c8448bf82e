"""The pure parts of the sandbox's workload controllers: hashing, rollout arithmetic, defaults, pod helpers."""

from __future__ import annotations

import pytest

from strongroom.sandbox.workloads import (
    POD_TEMPLATE_HASH,
    ReplicaCounts,
    apply_defaults,
    deletion_rank,
    fnv32a,
    job_backoff,
    new_replicas_rolling,
    old_replicas_rolling,
    pin_to_node,
    pod_available,
    pod_from_template,
    pod_node,
    resolve_fenceposts,
    safe_encode,
    scaled_value,
    template_hash,
    templates_equal,
)

TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}]},
}


def _pod(
    name: str, *, node: str = "", phase: str = "Running", ready: str | None = None, created: str = ""
) -> dict:
    conditions = [] if ready is None else [{"type": "Ready", "status": "True", "lastTransitionTime": ready}]
    return {
        "metadata": {"name": name, "creationTimestamp": created or "2024-01-01T00:00:00Z"},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


# ------------------------------------------------------------------ hashing


def test_fnv32a_matches_the_published_test_vectors() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_safe_encode_maps_digits_into_the_vowel_free_alphabet() -> None:
    assert safe_encode("0123456789") == "456789bcdf"


def test_template_hash_ignores_key_order_but_not_content() -> None:
    reordered = {
        "spec": {"containers": [{"command": ["sleep", "60"], "image": "busybox", "name": "c"}]},
        "metadata": {"labels": {"app": "web"}},
    }
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert template_hash(TEMPLATE) == template_hash(reordered)
    assert template_hash(TEMPLATE) != template_hash(changed)
    assert set(template_hash(TEMPLATE)) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_a_collision_count_gives_another_hash() -> None:
    assert len({template_hash(TEMPLATE), template_hash(TEMPLATE, 0), template_hash(TEMPLATE, 1)}) == 3


def test_templates_compare_equal_without_the_hash_label() -> None:
    hashed = {**TEMPLATE, "metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: "abc"}}}
    assert templates_equal(hashed, TEMPLATE)
    assert not templates_equal(hashed, {**TEMPLATE, "metadata": {"labels": {"app": "other"}}})


# ------------------------------------------------------ rollout arithmetic


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (2, 10, False, 2),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("100%", 3, False, 3),
        ("3", 10, True, 3),
    ],
)
def test_scaled_value_of_int_or_percent(value: object, total: int, round_up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up=round_up) == expected


@pytest.mark.parametrize("value", ["x%", "abc", None, True, 1.5])
def test_scaled_value_rejects_malformed_values(value: object) -> None:
    with pytest.raises(ValueError, match="invalid value"):
        scaled_value(value, 10, round_up=True)


def test_fenceposts_round_surge_up_and_unavailable_down() -> None:
    assert resolve_fenceposts(None, None, 4) == (1, 1)
    assert resolve_fenceposts("25%", "25%", 1) == (1, 0)
    assert resolve_fenceposts(0, 0, 5) == (0, 1)  # a rollout must be able to move


def test_new_replica_set_grows_within_the_surge() -> None:
    assert new_replicas_rolling(desired=3, surge=1, new_spec=0, all_spec=3) == 1
    assert new_replicas_rolling(desired=3, surge=1, new_spec=1, all_spec=4) == 1  # at the ceiling
    assert new_replicas_rolling(desired=3, surge=3, new_spec=0, all_spec=3) == 3
    assert new_replicas_rolling(desired=5, surge=2, new_spec=3, all_spec=3) == 5  # a plain scale up
    assert new_replicas_rolling(desired=2, surge=1, new_spec=4, all_spec=4) == 2  # a scale down


def test_old_replica_sets_shrink_only_as_far_as_availability_allows() -> None:
    old = [ReplicaCounts(spec=3, available=3)]
    # The new pod is not available yet: with no unavailability allowed nothing goes.
    assert old_replicas_rolling(3, 0, ReplicaCounts(spec=1, available=0), old) == [3]
    # Once it is, one old pod may go.
    assert old_replicas_rolling(3, 0, ReplicaCounts(spec=1, available=1), old) == [2]
    # With one unavailable allowed, one goes at once.
    assert old_replicas_rolling(3, 1, ReplicaCounts(spec=1, available=0), old) == [2]


def test_unavailable_old_pods_go_first_and_oldest_replica_sets_first() -> None:
    olds = [ReplicaCounts(spec=2, available=0), ReplicaCounts(spec=2, available=2)]
    assert old_replicas_rolling(4, 1, ReplicaCounts(spec=1, available=1), olds) == [0, 2]
    healthy = [ReplicaCounts(spec=1, available=1), ReplicaCounts(spec=2, available=2)]
    # Two old pods may go: the two new ones and the one left keep three available.
    assert old_replicas_rolling(3, 0, ReplicaCounts(spec=2, available=2), healthy) == [0, 1]


def test_job_backoff_doubles_up_to_its_ceiling() -> None:
    assert [job_backoff(n) for n in range(7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


# ---------------------------------------------------------------- defaults


def test_job_defaults_tie_the_job_to_its_pods_by_uid() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "pi", "uid": "u-1"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}},
    }
    apply_defaults(job, creating=True)
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u-1",
        "controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "pi",
        "job-name": "pi",
    }


def test_a_work_queue_job_keeps_completions_unset_and_manual_selectors_are_kept() -> None:
    job = {
        "kind": "Job",
        "metadata": {"name": "q", "uid": "u"},
        "spec": {"parallelism": 3, "manualSelector": True, "selector": {"matchLabels": {"a": "b"}}},
    }
    apply_defaults(job, creating=True)
    assert "completions" not in job["spec"]
    assert job["spec"]["selector"] == {"matchLabels": {"a": "b"}}


def test_daemonset_and_statefulset_defaults_allow_rollout_status() -> None:
    ds = {"kind": "DaemonSet", "spec": {}}
    sts = {"kind": "StatefulSet", "spec": {"volumeClaimTemplates": [{"spec": {}}]}}
    apply_defaults(ds, creating=True)
    apply_defaults(sts, creating=True)
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"


def test_an_on_delete_daemonset_gets_no_rolling_parameters() -> None:
    ds = {"kind": "DaemonSet", "spec": {"updateStrategy": {"type": "OnDelete"}}}
    apply_defaults(ds, creating=True)
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}


# ------------------------------------------------------------- pod helpers


def test_pods_from_a_template_are_owned_by_their_controller() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "uid": "u"}}
    template = {**TEMPLATE, "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}}}
    pod = pod_from_template(template, owner, generate_name="web-1-", labels={"extra": "x"})
    assert pod["metadata"]["generateName"] == "web-1-"
    assert pod["metadata"]["labels"] == {"app": "web", "extra": "x"}
    assert pod["metadata"]["annotations"] == {"a": "b"}
    assert pod["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-1",
            "uid": "u",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    pod["spec"]["containers"].append({})
    assert len(TEMPLATE["spec"]["containers"]) == 1  # the template is not shared


def test_scale_down_removes_unscheduled_then_unready_then_newest_ready_pods() -> None:
    pods = [
        _pod("old-ready", node="n", ready="2024-01-01T00:00:00Z"),
        _pod("new-ready", node="n", ready="2024-01-01T00:05:00Z"),
        _pod("unready", node="n"),
        _pod("pending", phase="Pending"),
    ]
    assert [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)] == [
        "pending",
        "unready",
        "new-ready",
        "old-ready",
    ]


def test_min_ready_seconds_delays_availability() -> None:
    pod = _pod("p", node="n", ready="2024-01-01T00:00:00Z")
    ready_at = 1704067200.0
    assert pod_available(pod, 0, ready_at)
    assert not pod_available(pod, 10, ready_at + 5)
    assert pod_available(pod, 10, ready_at + 10)
    assert not pod_available(_pod("q", node="n"), 0, ready_at)


def test_daemon_pods_are_pinned_by_node_affinity_keeping_other_expressions() -> None:
    spec = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]
                }
            }
        }
    }
    pin_to_node(spec, "node-2")
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [{"key": "disk", "operator": "Exists"}],
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-2"]}],
        }
    ]
    assert pod_node({"spec": spec}) == "node-2"
    assert pod_node({"spec": {**spec, "nodeName": "node-1"}}) == "node-1"
    empty: dict = {}
    pin_to_node(empty, "n")
    assert pod_node({"spec": empty}) == "n"


def test_templates_compare_as_decoded_objects_not_as_text() -> None:
    # kubectl's rollback sends the template with Go's empty values spelled out.
    spelled_out = {
        "metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
        "spec": {"containers": [{**TEMPLATE["spec"]["containers"][0], "resources": {}, "env": []}]},
    }
    assert templates_equal(spelled_out, TEMPLATE)
    with_volume = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "volumes": [{"name": "v", "emptyDir": {}}]}}
    without_source = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "volumes": [{"name": "v"}]}}
    assert not templates_equal(with_volume, without_source)
