"""What `strongroom install` renders: the objects, their order, and the permissions they grant.

The RBAC checks evaluate the rendered rules the way the API server's
authorizer matches them (groups, resources incl. "*" and subresources,
verbs), so they fail if a rule the server or node agent needs is missing
or if the node agent could write a Secret.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import strongroom
from strongroom.deploy import InstallOptions, Resources, render
from strongroom.deploy.manifests import MANAGED_BY_LABEL, parse_quantity
from strongroom.errors import UsageError
from strongroom.model.crds import crd_manifests

NS = "backup-system"


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str) -> bool:
    """RBAC's rule matching (k8s.io/kubernetes/pkg/apis/rbac/v1 helpers), for resource requests."""
    groups, resources, verbs = rule.get("apiGroups", []), rule.get("resources", []), rule.get("verbs", [])
    if "*" not in verbs and verb not in verbs:
        return False
    if "*" not in groups and group not in groups:
        return False
    if "*" in resources or resource in resources:
        return True
    _, _, sub = resource.partition("/")
    return bool(sub) and f"*/{sub}" in resources


def _granted(objects: list[dict[str, Any]], account: str, namespace: str) -> list[list[dict[str, Any]]]:
    """The rule sets bound to a service account: [cluster-wide rules, rules in ``namespace``]."""
    roles = {
        (obj["kind"], obj["metadata"]["name"]): obj
        for obj in objects
        if obj["kind"] in ("Role", "ClusterRole")
    }
    cluster: list[dict[str, Any]] = []
    local: list[dict[str, Any]] = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding["subjects"]
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == account and s["namespace"] == namespace
            for s in subjects
        ):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        if binding["kind"] == "ClusterRoleBinding":
            cluster.extend(role["rules"])
        elif binding["metadata"]["namespace"] == namespace:
            local.extend(role["rules"])
    return [cluster, local]


def allows(
    objects: list[dict[str, Any]], account: str, verb: str, group: str, resource: str, *, where: str
) -> bool:
    """Whether ``account`` of the installation may ``verb`` ``resource`` in namespace ``where``."""
    cluster, local = _granted(objects, account, NS)
    rules = cluster + (local if where == NS else [])
    return any(_rule_allows(rule, verb, group, resource) for rule in rules)


def test_renders_crds_then_namespace_accounts_rbac_and_workloads_in_that_order() -> None:
    kinds = [obj["kind"] for obj in render(InstallOptions(namespace=NS, use_node_agent=True))]
    crd_count = len(crd_manifests())
    assert kinds[:crd_count] == ["CustomResourceDefinition"] * crd_count
    rest = kinds[crd_count:]
    assert rest[0] == "Namespace"
    assert rest[1:3] == ["ServiceAccount", "ServiceAccount"]
    assert rest[-2:] == ["Deployment", "DaemonSet"]
    rbac = rest[3:-2]
    assert sorted(rbac) == sorted(["ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"] * 2)


def test_every_crd_of_the_api_is_rendered() -> None:
    names = {
        obj["metadata"]["name"]
        for obj in _by_kind(render(InstallOptions(use_node_agent=True)), "CustomResourceDefinition")
    }
    expected = {
        f"{plural}.velero.io"
        for plural in (
            "backups",
            "restores",
            "schedules",
            "backupstoragelocations",
            "volumesnapshotlocations",
            "deletebackuprequests",
            "downloadrequests",
            "serverstatusrequests",
            "podvolumebackups",
            "podvolumerestores",
            "backuprepositories",
        )
    } | {"dataprotectionapplications.oadp.openshift.io"}
    assert names == expected


def test_every_object_carries_the_managed_by_label() -> None:
    for obj in render(InstallOptions(namespace=NS, use_node_agent=True)):
        assert obj["metadata"]["labels"][MANAGED_BY_LABEL] == "strongroom", obj["kind"]


def test_namespaced_objects_live_in_the_chosen_namespace() -> None:
    for obj in render(InstallOptions(namespace=NS, use_node_agent=True)):
        if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding", "Deployment", "DaemonSet"):
            assert obj["metadata"]["namespace"] == NS
        else:
            assert "namespace" not in obj["metadata"]


def test_default_namespace_is_oadps() -> None:
    assert _one(render(InstallOptions(use_node_agent=True)), "Namespace", "openshift-adp")


def test_cluster_wide_names_differ_between_two_installations() -> None:
    def cluster_names(namespace: str) -> set[str]:
        return {
            obj["metadata"]["name"]
            for obj in render(InstallOptions(namespace=namespace))
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding")
        }

    assert cluster_names("one").isdisjoint(cluster_names("two"))


def test_server_deployment_runs_the_server_with_probes_metrics_and_credentials() -> None:
    deployment = _one(
        render(InstallOptions(namespace=NS, log_level="debug", replicas=2)), "Deployment", "strongroom"
    )
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "strongroom"
    assert labels["app.kubernetes.io/component"] == "server"
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert template["metadata"]["labels"]["component"] == "velero"
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "8085"
    pod = template["spec"]
    assert pod["serviceAccountName"] == "strongroom"
    (container,) = pod["containers"]
    assert container["image"] == f"strongroom/strongroom:{strongroom.__version__}"
    assert container["command"] == ["strongroom"]
    assert container["args"] == [
        "server",
        f"--namespace={NS}",
        "--metrics-address=:8085",
        "--log-level=debug",
        f"--restore-helper-image=strongroom/strongroom:{strongroom.__version__}",
    ]
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert container["ports"] == [{"name": "metrics", "containerPort": 8085, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "128Mi"},
        "limits": {"cpu": "1000m", "memory": "512Mi"},
    }
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["runAsNonRoot"] is True
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert volumes["cloud-credentials"]["secret"]["optional"] is True
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts == {"scratch": "/scratch", "cloud-credentials": "/credentials"}


def test_node_agent_mounts_the_kubelet_pods_directory_and_knows_its_node() -> None:
    daemonset = _one(
        render(InstallOptions(namespace=NS, use_node_agent=True, privileged_node_agent=True)),
        "DaemonSet",
        "node-agent",
    )
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "node-agent"
    (container,) = pod["containers"]
    assert container["args"][:3] == ["node-agent", "--node=$(NODE_NAME)", "--host-pods-root=/host_pods"]
    env = {item["name"]: item for item in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    host = next(volume for volume in pod["volumes"] if "hostPath" in volume)
    assert host["hostPath"]["path"] == "/var/lib/kubelet/pods"
    mount = next(mount for mount in container["volumeMounts"] if mount["name"] == host["name"])
    assert mount == {"name": host["name"], "mountPath": "/host_pods", "mountPropagation": "HostToContainer"}
    assert container["securityContext"]["privileged"] is True
    assert daemonset["spec"]["template"]["metadata"]["labels"]["name"] == "node-agent"


def test_node_agent_runs_as_root_with_the_supplemental_groups_asked_for() -> None:
    daemonset = _one(
        render(
            InstallOptions(namespace=NS, use_node_agent=True, node_agent_supplemental_groups=(5555, 6666))
        ),
        "DaemonSet",
        "node-agent",
    )
    assert daemonset["spec"]["template"]["spec"]["securityContext"] == {
        "runAsUser": 0,
        "supplementalGroups": [5555, 6666],
    }
    plain = _one(render(InstallOptions(namespace=NS, use_node_agent=True)), "DaemonSet", "node-agent")
    assert plain["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 0}
    with pytest.raises(UsageError, match="supplemental-groups"):
        InstallOptions(namespace=NS, use_node_agent=True, node_agent_supplemental_groups=(-1,))


def test_node_agent_records_repositories_in_its_namespace_only() -> None:
    objects = render(InstallOptions(namespace=NS, use_node_agent=True))
    for verb in ("get", "create", "patch", "delete"):
        assert allows(objects, "node-agent", verb, "velero.io", "backuprepositories", where=NS)
        assert not allows(objects, "node-agent", verb, "velero.io", "backuprepositories", where="apps")


def test_node_agent_is_unprivileged_unless_asked() -> None:
    daemonset = _one(render(InstallOptions(namespace=NS, use_node_agent=True)), "DaemonSet", "node-agent")
    assert daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] is False


def test_without_node_agent_there_is_no_daemonset_nor_its_account_and_the_namespace_is_restricted() -> None:
    objects = render(InstallOptions(namespace=NS, use_node_agent=False))
    assert not _by_kind(objects, "DaemonSet")
    assert all("node-agent" not in obj["metadata"]["name"] for obj in objects)
    labels = _one(objects, "Namespace", NS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_with_node_agent_the_namespace_admits_privileged_pods() -> None:
    labels = _one(render(InstallOptions(namespace=NS, use_node_agent=True)), "Namespace", NS)["metadata"][
        "labels"
    ]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


@pytest.mark.parametrize(
    ("verb", "group", "resource"),
    [
        ("update", "velero.io", "backups/status"),
        ("patch", "velero.io", "restores/status"),
        ("create", "velero.io", "backups"),
        ("delete", "velero.io", "deletebackuprequests"),
        ("watch", "velero.io", "schedules"),
        ("update", "oadp.openshift.io", "dataprotectionapplications/status"),
        ("create", "velero.io", "backupstoragelocations"),
        ("get", "", "secrets"),
        ("create", "coordination.k8s.io", "leases"),
        ("update", "coordination.k8s.io", "leases"),
        ("create", "", "events"),
        ("patch", "events.k8s.io", "events"),
    ],
)
def test_server_may_run_its_own_resources_in_its_namespace(verb: str, group: str, resource: str) -> None:
    assert allows(
        render(InstallOptions(namespace=NS, use_node_agent=True)),
        "strongroom",
        verb,
        group,
        resource,
        where=NS,
    )


@pytest.mark.parametrize(
    ("verb", "group", "resource"),
    [
        ("list", "", "secrets"),
        ("watch", "apps", "deployments"),
        ("get", "apiextensions.k8s.io", "customresourcedefinitions"),
        ("list", "example.com", "widgets"),
        ("create", "", "persistentvolumes"),
        ("update", "apps", "deployments"),
        ("create", "", "pods/exec"),
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
        ("escalate", "rbac.authorization.k8s.io", "clusterroles"),
        ("bind", "rbac.authorization.k8s.io", "roles"),
    ],
)
def test_server_may_back_up_and_restore_anything_anywhere(verb: str, group: str, resource: str) -> None:
    assert allows(
        render(InstallOptions(namespace=NS, use_node_agent=True)),
        "strongroom",
        verb,
        group,
        resource,
        where="apps",
    )


@pytest.mark.parametrize(
    ("verb", "group", "resource"),
    [
        ("impersonate", "", "serviceaccounts"),
        ("impersonate", "", "users"),
        ("escalate", "", "secrets"),
        ("deletecollection", "", "namespaces"),
    ],
)
def test_server_holds_no_more_than_backup_and_restore_need(verb: str, group: str, resource: str) -> None:
    objects = render(InstallOptions(namespace=NS, use_node_agent=True))
    assert not allows(objects, "strongroom", verb, group, resource, where="apps")
    clusterroles = _by_kind(objects, "ClusterRole")
    assert all("nonResourceURLs" not in rule for role in clusterroles for rule in role["rules"])
    bindings = _by_kind(objects, "ClusterRoleBinding")
    assert all(binding["roleRef"]["name"] != "cluster-admin" for binding in bindings)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "where"),
    [
        ("get", "", "pods", "apps"),
        ("list", "", "persistentvolumeclaims", "apps"),
        ("watch", "", "persistentvolumes", "apps"),
        ("update", "velero.io", "podvolumebackups", NS),
        ("patch", "velero.io", "podvolumebackups/status", NS),
        ("update", "velero.io", "podvolumerestores/status", NS),
        ("get", "", "secrets", NS),
    ],
)
def test_node_agent_may_read_volumes_and_report_pod_volume_work(
    verb: str, group: str, resource: str, where: str
) -> None:
    assert allows(
        render(InstallOptions(namespace=NS, use_node_agent=True)),
        "node-agent",
        verb,
        group,
        resource,
        where=where,
    )


@pytest.mark.parametrize("verb", ["create", "update", "patch", "delete", "list", "watch"])
def test_node_agent_cannot_write_or_list_secrets(verb: str) -> None:
    objects = render(InstallOptions(namespace=NS, use_node_agent=True))
    assert not allows(objects, "node-agent", verb, "", "secrets", where=NS)
    assert not allows(objects, "node-agent", "get", "", "secrets", where="apps")


@pytest.mark.parametrize(
    ("verb", "group", "resource", "where"),
    [
        ("create", "velero.io", "backups", NS),
        ("delete", "velero.io", "podvolumebackups", NS),
        ("update", "", "pods", "apps"),
        ("create", "apps", "deployments", "apps"),
    ],
)
def test_node_agent_cannot_do_the_servers_work(verb: str, group: str, resource: str, where: str) -> None:
    assert not allows(
        render(InstallOptions(namespace=NS, use_node_agent=True)),
        "node-agent",
        verb,
        group,
        resource,
        where=where,
    )


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"namespace": "Bad_Namespace"}, "--namespace"),
        ({"namespace": "x" * 64}, "--namespace"),
        ({"namespace": "-leading"}, "--namespace"),
        ({"image": "UPPER/case"}, "--image"),
        ({"image": "registry.example.com/strongroom:bad tag"}, "--image"),
        ({"image": ""}, "--image"),
        ({"replicas": 0}, "--replicas"),
        ({"log_level": "verbose"}, "--log-level"),
        ({"kubelet_root_dir": "relative/path"}, "--kubelet-root-dir"),
        ({"server_resources": Resources(cpu_request="lots")}, "--server-cpu-request"),
        ({"server_resources": Resources(memory_limit="1XB")}, "--server-memory-limit"),
        ({"server_resources": Resources(cpu_request="2", cpu_limit="1")}, "--server-cpu-request"),
        ({"node_agent_resources": Resources(memory_request="-1Gi")}, "--node-agent-memory-request"),
    ],
)
def test_bad_values_are_refused_naming_the_flag(kwargs: dict[str, Any], flag: str) -> None:
    with pytest.raises(UsageError) as raised:
        InstallOptions(**kwargs)
    assert flag in raised.value.message


@pytest.mark.parametrize(
    "image",
    [
        "strongroom/strongroom:0.1.0",
        "quay.io/example/strongroom:v1.2.3-rc.1",
        "localhost:5000/strongroom",
        "registry.example.com/a/b/c@sha256:" + "a" * 64,
        "strongroom",
    ],
)
def test_ordinary_image_references_are_accepted(image: str) -> None:
    assert InstallOptions(image=image).image == image


def test_resource_flags_reach_the_containers() -> None:
    objects = render(
        InstallOptions(
            server_resources=Resources("1", "1Gi", "2", "2Gi"),
            node_agent_resources=Resources(memory_limit="1Gi"),
            use_node_agent=True,
        )
    )
    server = _one(objects, "Deployment", "strongroom")["spec"]["template"]["spec"]["containers"][0]
    agent = _one(objects, "DaemonSet", "node-agent")["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    assert agent["resources"] == {"limits": {"memory": "1Gi"}}


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("1000m", "1"), ("128Mi", str(128 * 2**20)), ("1e3", "1000"), ("1.5G", "1500000000")],
)
def test_quantities_parse_to_their_value(text: str, value: str) -> None:
    assert parse_quantity(text) == parse_quantity(value)


def test_deploy_never_imports_storage_so_uninstall_cannot_touch_backups() -> None:
    package = Path(strongroom.__file__).parent / "deploy"
    imported: set[str] = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    forbidden = (
        "strongroom.storage",
        "strongroom.backup",
        "strongroom.restore",
        "strongroom.locations",
        "obstore",
    )
    assert imported
    assert not [name for name in imported if name.startswith(forbidden)]
