"""The scheduled etcd backup `strongroom install --etcd-backup-schedule` renders, and its refusals.

The CronJob runs `strongroom etcd snapshot save` on a control-plane node the
way `cluster-backup.sh` is run there: on the host's network, as root, with
the host's /etc/kubernetes (etcd's certificates, OpenShift's static pod
resources) read-only. Nothing of it is rendered without a schedule.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
import yaml

from strongroom.cli.main import run_cli
from strongroom.deploy import InstallOptions, render
from strongroom.deploy.manifests import ETCD_BACKUP_NAME, MANAGED_BY_LABEL, cluster_object_name, inventory
from strongroom.errors import EXIT_USAGE, UsageError

NS = "backup-system"
SCHEDULE = "0 */6 * * *"
CONTROL_PLANE = ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = _find(objects, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _cronjob(**options: Any) -> dict[str, Any]:
    objects = render(InstallOptions(namespace=NS, etcd_backup_schedule=SCHEDULE, **options))
    return _one(objects, "CronJob", ETCD_BACKUP_NAME)


def _pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _command(**options: Any) -> list[str]:
    command: list[str] = _pod(_cronjob(**options))["containers"][0]["command"]
    return command


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run_cli(list(args))
    return code, out.getvalue(), err.getvalue()


def test_schedule_renders_the_cronjob_its_account_and_its_roles_in_the_install_namespace() -> None:
    objects = render(InstallOptions(namespace=NS, etcd_backup_schedule=SCHEDULE))
    cluster_name = cluster_object_name(NS, "etcd-backup")
    rendered = [
        _one(objects, "ServiceAccount", ETCD_BACKUP_NAME),
        _one(objects, "Role", ETCD_BACKUP_NAME),
        _one(objects, "RoleBinding", ETCD_BACKUP_NAME),
        _one(objects, "ClusterRole", cluster_name),
        _one(objects, "ClusterRoleBinding", cluster_name),
        _one(objects, "CronJob", ETCD_BACKUP_NAME),
    ]
    for obj in rendered:
        labels = obj["metadata"]["labels"]
        assert labels[MANAGED_BY_LABEL] == "strongroom"
        assert labels["app.kubernetes.io/instance"] == NS
        assert labels["app.kubernetes.io/component"] == "etcd-backup"
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NS
    for binding in rendered[2], rendered[4]:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ETCD_BACKUP_NAME, "namespace": NS}]
    assert rendered[2]["roleRef"]["name"] == ETCD_BACKUP_NAME
    assert rendered[4]["roleRef"]["name"] == cluster_name
    # The CronJob comes last, after the account and roles it runs with.
    assert objects[-1]["kind"] == "CronJob"


def test_roles_let_the_backup_read_its_location_and_discover_etcd_and_nothing_more() -> None:
    objects = render(InstallOptions(namespace=NS, etcd_backup_schedule=SCHEDULE))
    role = _one(objects, "Role", ETCD_BACKUP_NAME)
    cluster_role = _one(objects, "ClusterRole", cluster_object_name(NS, "etcd-backup"))

    def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (group, resource, verb)
            for rule in rules
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }

    assert grants(role["rules"]) == {
        ("velero.io", "backupstoragelocations", "get"),
        ("velero.io", "backupstoragelocations", "list"),
        ("", "secrets", "get"),
        ("security.openshift.io", "securitycontextconstraints", "use"),
    }
    scc = [rule for rule in role["rules"] if rule["apiGroups"] == ["security.openshift.io"]]
    assert scc[0]["resourceNames"] == ["privileged"]
    assert grants(cluster_role["rules"]) == {
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "nodes", "get"),
        ("", "nodes", "list"),
        ("config.openshift.io", "clusteroperators", "get"),
        ("config.openshift.io", "clusteroperators", "list"),
    }


def test_cronjob_runs_one_snapshot_at_a_time_on_the_schedule() -> None:
    cronjob = _cronjob()
    assert cronjob["apiVersion"] == "batch/v1"
    spec = cronjob["spec"]
    assert spec["schedule"] == SCHEDULE
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 3
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 1
    labels = spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "etcd-backup"
    assert labels["app.kubernetes.io/instance"] == NS


def test_pod_runs_on_a_control_plane_node_on_the_host_network() -> None:
    pod = _pod(_cronjob())
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == ETCD_BACKUP_NAME
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert "nodeSelector" not in pod
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    # Either label qualifies a node: one term each (terms are ORed, expressions in a term ANDed).
    assert terms == [{"matchExpressions": [{"key": label, "operator": "Exists"}]} for label in CONTROL_PLANE]
    assert pod["tolerations"] == [
        {"key": label, "operator": "Exists", "effect": "NoSchedule"} for label in CONTROL_PLANE
    ]


def test_container_is_privileged_root_with_the_hosts_kubernetes_config_read_only() -> None:
    pod = _pod(_cronjob(image="quay.io/example/strongroom:2.0"))
    (container,) = pod["containers"]
    assert container["image"] == "quay.io/example/strongroom:2.0"
    assert container["securityContext"] == {"privileged": True, "runAsUser": 0}
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert volumes["etc-kubernetes"]["hostPath"] == {"path": "/etc/kubernetes", "type": "Directory"}
    assert mounts["etc-kubernetes"] == {
        "name": "etc-kubernetes",
        "mountPath": "/host/etc/kubernetes",
        "readOnly": True,
    }
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert mounts["scratch"]["mountPath"] == "/scratch"
    assert set(volumes) == {"etc-kubernetes", "scratch"}


def test_command_saves_to_the_location_prunes_and_verifies() -> None:
    assert _command() == [
        "strongroom",
        "etcd",
        "snapshot",
        "save",
        "--storage-location",
        "default",
        "--namespace",
        NS,
        "--host-root",
        "/host",
        "--keep-last",
        "7",
        "--verify",
        "--scratch-dir",
        "/scratch",
    ]
    command = _command(
        etcd_backup_location="s3-east",
        etcd_backup_keep_last=3,
        etcd_backup_keep_daily=7,
        etcd_backup_keep_weekly=4,
    )
    assert command[4:6] == ["--storage-location", "s3-east"]
    assert command[10:16] == ["--keep-last", "3", "--keep-daily", "7", "--keep-weekly", "4"]


def test_keeps_of_zero_are_left_out_of_the_command() -> None:
    command = _command(etcd_backup_keep_last=0, etcd_backup_keep_daily=2, etcd_backup_keep_weekly=0)
    assert "--keep-last" not in command
    assert "--keep-weekly" not in command
    assert command[command.index("--keep-daily") + 1] == "2"
    nothing = _command(etcd_backup_keep_last=0)
    assert not any(arg.startswith("--keep-") for arg in nothing)


def test_no_verify_drops_verify_and_its_scratch_dir() -> None:
    command = _command(etcd_backup_verify=False)
    assert "--verify" not in command
    assert "--scratch-dir" not in command
    assert command[-2:] == ["--keep-last", "7"]


def test_without_a_schedule_nothing_of_the_etcd_backup_is_rendered() -> None:
    plain = render(InstallOptions(namespace=NS))
    assert not [obj for obj in plain if obj["kind"] == "CronJob"]
    assert not [obj for obj in plain if "etcd-backup" in obj["metadata"]["name"]]
    # The other options alone change nothing either.
    tuned = render(InstallOptions(namespace=NS, etcd_backup_location="elsewhere", etcd_backup_keep_last=1))
    assert tuned == plain


def test_the_etcd_backup_needs_a_privileged_namespace() -> None:
    def level(options: InstallOptions) -> str:
        namespace = _one(render(options), "Namespace", NS)
        enforce: str = namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        return enforce

    assert level(InstallOptions(namespace=NS)) == "restricted"
    assert level(InstallOptions(namespace=NS, etcd_backup_schedule=SCHEDULE)) == "privileged"


@pytest.mark.parametrize("schedule", ["0 */6 * * *", "30 2 * * 1-5", "@daily", "  15 3 * * *  "])
def test_valid_schedules_are_taken(schedule: str) -> None:
    cronjob = _one(
        render(InstallOptions(namespace=NS, etcd_backup_schedule=schedule)), "CronJob", ETCD_BACKUP_NAME
    )
    assert cronjob["spec"]["schedule"] == schedule.strip()


@pytest.mark.parametrize(
    "schedule", ["", "not a cron", "61 * * * *", "0 */6 * *", "0 0 */6 * * *", "@every 6h", "@fortnightly"]
)
def test_invalid_schedule_is_a_usage_error_naming_the_flag(schedule: str) -> None:
    with pytest.raises(UsageError, match="--etcd-backup-schedule"):
        InstallOptions(namespace=NS, etcd_backup_schedule=schedule)


@pytest.mark.parametrize(
    ("options", "flag"),
    [
        ({"etcd_backup_keep_last": -1}, "--etcd-backup-keep-last"),
        ({"etcd_backup_keep_daily": -2}, "--etcd-backup-keep-daily"),
        ({"etcd_backup_keep_weekly": -3}, "--etcd-backup-keep-weekly"),
        ({"etcd_backup_location": "Not_A_Name"}, "--etcd-backup-location"),
        ({"etcd_backup_location": ""}, "--etcd-backup-location"),
    ],
)
def test_invalid_backup_options_are_usage_errors_naming_the_flag(options: dict[str, Any], flag: str) -> None:
    with pytest.raises(UsageError, match=flag):
        InstallOptions(namespace=NS, etcd_backup_schedule=SCHEDULE, **options)


def test_cli_dry_run_renders_the_cronjob_from_the_flags() -> None:
    code, out, err = _cli(
        "install",
        "--dry-run",
        "--namespace",
        NS,
        "--etcd-backup-schedule",
        SCHEDULE,
        "--etcd-backup-location",
        "s3-east",
        "--etcd-backup-keep-last",
        "0",
        "--etcd-backup-keep-weekly",
        "4",
        "--no-etcd-backup-verify",
    )
    assert code == 0, err
    cronjob = _one(list(yaml.safe_load_all(out)), "CronJob", ETCD_BACKUP_NAME)
    assert cronjob["spec"]["schedule"] == SCHEDULE
    assert _pod(cronjob)["containers"][0]["command"][4:] == [
        "--storage-location",
        "s3-east",
        "--namespace",
        NS,
        "--host-root",
        "/host",
        "--keep-weekly",
        "4",
    ]


def test_cli_refuses_a_bad_schedule_before_contacting_a_cluster() -> None:
    code, _, err = _cli(
        "install", "--namespace", NS, "--etcd-backup-schedule", "every day", "--kubeconfig", "/nonexistent"
    )
    assert code == EXIT_USAGE
    assert "--etcd-backup-schedule" in err


@pytest.mark.parametrize(
    "flag", [["--etcd-backup-keep-last", "3"], ["--etcd-backup-location", "x"], ["--no-etcd-backup-verify"]]
)
def test_cli_refuses_etcd_backup_flags_without_a_schedule(flag: list[str]) -> None:
    code, _, err = _cli("install", "--dry-run", "--namespace", NS, *flag)
    assert code == EXIT_USAGE
    assert "needs --etcd-backup-schedule" in err


def test_uninstall_inventory_holds_every_optional_component() -> None:
    objects = inventory(NS)
    assert _find(objects, "CronJob", ETCD_BACKUP_NAME)
    assert _find(objects, "ServiceAccount", ETCD_BACKUP_NAME)
    assert _find(objects, "ClusterRoleBinding", cluster_object_name(NS, "etcd-backup"))
    assert _find(objects, "DaemonSet", "node-agent")
    assert _find(objects, "ClusterRole", cluster_object_name(NS, "node-agent"))
