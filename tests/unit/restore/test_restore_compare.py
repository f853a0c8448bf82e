"""What a restore does with objects that already exist: Velero's comparison, warnings, patches and merges."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.unit.restore.builders import configmap, obj, options

from strongroom.restore.compare import (
    ExistingDecision,
    Outcome,
    compare_existing,
    json_equal,
    merge_patch,
    merge_service_accounts,
    render_diff,
)
from strongroom.restore.plan import Prepared, prepare_item
from strongroom.sandbox.patch import apply_json_merge_patch

BACKUP_LABEL = "velero.io/backup-name"
RESTORE_LABEL = "velero.io/restore-name"


def _desired(backed_up: dict[str, Any], group_resource: str = "configmaps", **kw: Any) -> dict[str, Any]:
    result = prepare_item(backed_up, group_resource, options(**kw))
    assert isinstance(result, Prepared)
    return result.object


def _live(backed_up: dict[str, Any]) -> dict[str, Any]:
    """The object as the cluster returns it: new uid, version and timestamps, a status, maybe old labels."""
    live = copy.deepcopy(backed_up)
    live["metadata"].update(
        {
            "uid": "live-uid",
            "resourceVersion": "99999",
            "creationTimestamp": "2024-06-01T00:00:00Z",
            "generation": 7,
        }
    )
    live["status"] = {"observed": True}
    return live


def test_restore_skips_identical_existing_configmap() -> None:
    decision = compare_existing(_live(configmap()), _desired(configmap()), "configmaps")
    assert decision == ExistingDecision(Outcome.SKIP_IDENTICAL)


def test_object_restored_earlier_by_another_restore_is_still_identical() -> None:
    live = _live(configmap())
    live["metadata"]["labels"] = {BACKUP_LABEL: "older-backup", RESTORE_LABEL: "older-restore"}
    assert compare_existing(live, _desired(configmap()), "configmaps").outcome is Outcome.SKIP_IDENTICAL


def test_desired_status_for_status_restore_is_not_compared() -> None:
    desired = _desired(configmap(status={"x": 1}), restore_status_resources=frozenset({"configmaps"}))
    assert "status" in desired
    assert compare_existing(_live(configmap()), desired, "configmaps").outcome is Outcome.SKIP_IDENTICAL


def _changed_live() -> dict[str, Any]:
    live = _live(configmap())
    live["data"] = {"mode": "slow", "extra": "added-later"}
    return live


def test_different_existing_object_with_policy_none_is_a_velero_warning() -> None:
    decision = compare_existing(_changed_live(), _desired(configmap()), "configmaps", "none")
    assert decision.outcome is Outcome.SKIP_DIFFERENT
    assert decision.patch is None
    assert decision.message == (
        'could not restore, ConfigMap "settings" already exists. '
        "Warning: the in-cluster version is different than the backed-up version"
    )


def test_different_existing_object_without_policy_keeps_velero_older_message() -> None:
    decision = compare_existing(_changed_live(), _desired(configmap()), "configmaps")
    assert decision.outcome is Outcome.SKIP_DIFFERENT
    assert decision.message == (
        "could not restore, ConfigMap:settings already exists. "
        "Warning: the in-cluster version is different than the backed-up version"
    )


def test_different_existing_object_with_policy_update_is_patched_towards_the_backup() -> None:
    decision = compare_existing(_changed_live(), _desired(configmap()), "configmaps", "update")
    assert decision.outcome is Outcome.UPDATE
    assert decision.patch == {
        "data": {"mode": "fast"},
        "metadata": {"labels": {BACKUP_LABEL: "nightly", RESTORE_LABEL: "nightly-20240502"}},
    }
    assert decision.fallback_patch == {
        "metadata": {"labels": {BACKUP_LABEL: "nightly", RESTORE_LABEL: "nightly-20240502"}}
    }


def test_velero_exact_update_patch_also_deletes_fields_the_backup_lacks() -> None:
    live = _changed_live()
    desired = _desired(configmap())
    decision = compare_existing(live, desired, "configmaps", "update", prune=True)
    assert decision.patch is not None
    assert decision.patch["data"] == {"mode": "fast", "extra": None}
    patched = apply_json_merge_patch(live, decision.patch)
    assert isinstance(patched, dict)
    assert patched["data"] == desired["data"]
    assert patched["metadata"]["labels"] == desired["metadata"]["labels"]
    assert patched["metadata"]["uid"] == "live-uid"


def test_identical_object_with_policy_update_only_gets_the_restore_labels() -> None:
    live = _live(configmap())
    live["metadata"]["labels"] = {"app": "shop", BACKUP_LABEL: "older", RESTORE_LABEL: "older"}
    desired = _desired(configmap(labels={"app": "shop"}))
    decision = compare_existing(live, desired, "configmaps", "update")
    assert decision.outcome is Outcome.SKIP_IDENTICAL
    assert decision.patch == {
        "metadata": {"labels": {BACKUP_LABEL: "nightly", RESTORE_LABEL: "nightly-20240502"}}
    }


def test_update_patch_keeps_what_only_the_cluster_has_by_default() -> None:
    backed_up = obj(
        "v1",
        "Service",
        "web",
        "shop",
        spec={"clusterIP": "10.0.0.7", "ports": [{"port": 80}], "type": "ClusterIP"},
    )
    desired = _desired(backed_up, "services")
    live = _live(backed_up)
    live["spec"]["clusterIP"] = "10.96.3.3"
    live["spec"]["ports"] = [{"port": 8080}]
    decision = compare_existing(live, desired, "services", "update")
    assert decision.patch is not None
    assert decision.patch["spec"] == {"ports": [{"port": 80}]}


def _account(name: str = "default", **body: Any) -> dict[str, Any]:
    labels = body.pop("labels", None)
    annotations = body.pop("annotations", None)
    return obj("v1", "ServiceAccount", name, "ns1", labels=labels, annotations=annotations, **body)


def test_service_account_merge_keeps_only_default_token() -> None:
    live = _account(secrets=[{"name": "default-token-abcde"}])
    backup = _account(secrets=[])
    assert merge_service_accounts(live, backup)["secrets"] == [{"name": "default-token-abcde"}]


def test_service_account_merge_appends_backed_up_secrets() -> None:
    live = _account(secrets=[{"name": "default-token-abcde"}, {"name": "my-secret"}, {"name": "sekrit"}])
    backup = _account(secrets=[{"name": "my-old-secret"}, {"name": "secrete"}, {"name": "sekrit"}])
    assert [s["name"] for s in merge_service_accounts(live, backup)["secrets"]] == [
        "default-token-abcde",
        "my-secret",
        "sekrit",
        "my-old-secret",
        "secrete",
    ]


def test_service_account_merge_adds_missing_labels_and_annotations_keeping_live_values() -> None:
    live = _account(
        labels={"l1": "v1", "l2": "live"}, annotations={"a1": "v1"}, imagePullSecrets=[{"name": "pull"}]
    )
    backup = _account(
        labels={"l1": "v1", "l2": "backup", "l4": "v4"},
        annotations={"a5": "v5"},
        imagePullSecrets=[{"name": "pull"}, {"name": "registry"}],
    )
    merged = merge_service_accounts(live, backup)
    assert merged["metadata"]["labels"] == {"l1": "v1", "l2": "live", "l4": "v4"}
    assert merged["metadata"]["annotations"] == {"a1": "v1", "a5": "v5"}
    assert merged["imagePullSecrets"] == [{"name": "pull"}, {"name": "registry"}]


def test_existing_service_account_is_merged_whatever_the_policy() -> None:
    backed_up = _account(secrets=[{"name": "default-token-old"}, {"name": "app-creds"}])
    desired = _desired(backed_up, "serviceaccounts")
    live = _live(_account(secrets=[{"name": "default-token-new"}]))
    for policy in (None, "none", "update"):
        decision = compare_existing(live, desired, "serviceaccounts", policy)
        assert decision.outcome is Outcome.UPDATE
        # Velero's merge patch adds what is missing and, since the live copy was given this
        # restore's labels before merging, does not write the labels itself.
        assert decision.patch == {"secrets": [{"name": "default-token-new"}, {"name": "app-creds"}]}
        assert decision.message == ""
    assert compare_existing(live, desired, "serviceaccounts", "update").fallback_patch == {
        "metadata": {"labels": {BACKUP_LABEL: "nightly", RESTORE_LABEL: "nightly-20240502"}}
    }
    assert compare_existing(live, desired, "serviceaccounts").fallback_patch is None


def test_existing_service_account_with_nothing_to_add_is_skipped() -> None:
    desired = _desired(_account(secrets=[{"name": "default-token-old"}]), "serviceaccounts")
    live = _live(_account(secrets=[{"name": "default-token-new"}], labels={"extra": "live-only"}))
    assert compare_existing(live, desired, "serviceaccounts").outcome is Outcome.SKIP_IDENTICAL


@pytest.mark.parametrize(
    ("desired_extra", "expected"),
    [
        ({}, None),
        (
            {"metadata": {"labels": {"label1": "value1", "label2": "value2"}}},
            {"metadata": {"labels": {"label1": "value1", "label2": "value2"}}},
        ),
        (
            {"metadata": {"annotations": {"a1": "v1", "a2": "v2"}}},
            {"metadata": {"annotations": {"a1": "v1", "a2": "v2"}}},
        ),
        (
            {"secrets": [{"name": "default-token-abcde"}, {"name": "sekrit"}, {"name": "secrete"}]},
            {"secrets": [{"name": "default-token-abcde"}, {"name": "sekrit"}, {"name": "secrete"}]},
        ),
    ],
)
def test_merge_patch_matches_velero_generate_patch(
    desired_extra: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    base: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"namespace": "ns1", "name": "default"},
        "secrets": [{"name": "default-token-abcde"}],
    }
    desired = copy.deepcopy(base)
    for key, value in desired_extra.items():
        if isinstance(value, dict) and isinstance(desired.get(key), dict):
            desired[key].update(value)
        else:
            desired[key] = value
    assert merge_patch(base, desired) == expected


def test_merge_patch_round_trips_through_an_rfc7386_implementation() -> None:
    original = {"a": 1, "b": {"c": [1, 2], "d": "x", "e": {"f": True}}, "gone": "y"}
    modified = {"a": 1.0, "b": {"c": [2], "d": "x", "e": {}}, "new": None, "added": {"k": "v"}}
    patch = merge_patch(original, modified)
    assert patch == {"b": {"c": [2], "e": {"f": None}}, "gone": None, "added": {"k": "v"}}
    assert apply_json_merge_patch(original, patch) == {
        "a": 1,
        "b": {"c": [2], "d": "x", "e": {}},
        "added": {"k": "v"},
    }


def test_json_equality_treats_numbers_alike_but_not_booleans() -> None:
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal(True, 1)
    assert not json_equal({"a": 1}, {"a": 1, "b": None})
    assert merge_patch({"flag": 1}, {"flag": True}) == {"flag": True}


def test_render_diff_shows_what_differs_as_yaml() -> None:
    diff = render_diff(_changed_live(), _desired(configmap()))
    assert diff.startswith("--- in-cluster\n+++ backup\n")
    assert "-  mode: slow\n" in diff
    assert "+  mode: fast\n" in diff
    assert "-  extra: added-later\n" in diff
    assert "uid" not in diff
    assert "status" not in diff


def test_render_diff_is_empty_for_identical_objects() -> None:
    assert render_diff(_live(configmap()), _desired(configmap())) == ""
    assert render_diff({"a": 1}, {"a": 1}, normalize=False) == ""
