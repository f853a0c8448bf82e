"""Server-side printing: the Table rows `kubectl get` shows, cell by cell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strongroom.sandbox import tables
from strongroom.sandbox.resources import BUILTIN_TYPES, ResourceRegistry, ResourceType

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)
REGISTRY = ResourceRegistry()


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rt(group: str, resource: str) -> ResourceType:
    found = REGISTRY.lookup(group, "v1", resource)
    assert found is not None
    return found


def row(resource: str, obj: dict[str, Any], group: str = "") -> dict[str, Any]:
    """The single row of `obj`'s table, as a column name -> cell mapping."""
    table = tables.to_table(rt(group, resource), [obj], now=NOW)
    names = [c["name"] for c in table["columnDefinitions"]]
    [only] = table["rows"]
    assert len(only["cells"]) == len(names)
    return dict(zip(names, only["cells"], strict=True))


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "creationTimestamp": ago(minutes=5), **extra}


# --- media type -------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
            "application/json",
            True,
        ),
        (tables.TABLE_CONTENT_TYPE, True),
        ("application/json;g=meta.k8s.io;v=v1;as=Table", True),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False),
        ("application/json", False),
        ("application/yaml", False),
    ],
)
def test_table_is_answered_when_meta_v1_table_is_accepted(accept: str, expected: bool) -> None:
    assert tables.wants_table(accept) is expected


# --- HumanDuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=-3), "<invalid>"),
        (timedelta(seconds=-1.5), "0s"),
        (timedelta(seconds=0), "0s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=3, seconds=2), "3m2s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=5), "5h"),
        (timedelta(hours=5, minutes=30), "5h30m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8, hours=5), "8d"),
        (timedelta(days=12), "12d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=3 * 365 + 45), "3y45d"),
        (timedelta(days=8 * 365), "8y"),
        (timedelta(days=20 * 365 + 100), "20y"),
    ],
)
def test_human_duration_rounds_like_kubernetes(delta: timedelta, expected: str) -> None:
    assert tables.human_duration(delta) == expected


def test_age_of_a_missing_timestamp_is_unknown() -> None:
    assert tables.age(None, NOW) == "<unknown>"
    assert tables.age("2025-01-10T11:59:00Z", NOW) == "60s"
    assert tables.age("2025-01-10T11:55:00.123456Z", NOW) == "4m59s"


# --- table envelope ---------------------------------------------------------------


def test_table_envelope_carries_list_metadata_and_columns() -> None:
    pods = [{"metadata": meta("a", namespace="ns", uid="u1")}]
    table = tables.to_table(
        rt("", "pods"), pods, resource_version="42", continue_token="abc", remaining=7, now=NOW
    )
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 7}
    first = table["columnDefinitions"][0]
    assert first == {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": first["description"],
        "priority": 0,
    }
    assert first["description"]
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": pods[0]["metadata"],
    }


def test_include_object_chooses_what_each_row_embeds() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta("a"), "spec": {"containers": []}}
    full = tables.table_row(rt("", "pods"), pod, include_object="Object", now=NOW)
    assert full["object"] == pod
    bare = tables.table_row(rt("", "pods"), pod, include_object="None", now=NOW)
    assert "object" not in bare
    with pytest.raises(ValueError, match="includeObject"):
        tables.table_row(rt("", "pods"), pod, include_object="Everything", now=NOW)


def test_watch_events_are_one_row_tables_with_columns() -> None:
    pod = {"metadata": meta("a", resourceVersion="9")}
    event = tables.watch_table(rt("", "pods"), pod, now=NOW)
    assert event["kind"] == "Table"
    assert len(event["rows"]) == 1
    assert [c["name"] for c in event["columnDefinitions"]][:5] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert event["metadata"]["resourceVersion"] == "9"
    later = tables.watch_table(rt("", "pods"), pod, now=NOW, no_headers=True)
    assert later["columnDefinitions"] == []
    assert later["rows"] == event["rows"]


@pytest.mark.parametrize("resource_type", BUILTIN_TYPES, ids=lambda r: f"{r.group or 'core'}/{r.resource}")
def test_every_builtin_prints_a_cell_per_column_even_for_a_bare_object(resource_type: ResourceType) -> None:
    table = tables.to_table(resource_type, [{"metadata": {"name": "x"}}], now=NOW)
    [only] = table["rows"]
    assert len(only["cells"]) == len(table["columnDefinitions"])
    assert "x" in only["cells"]
    for column in table["columnDefinitions"]:
        assert set(column) == {"name", "type", "format", "description", "priority"}


def test_kinds_without_a_printer_show_name_and_creation_time() -> None:
    role = row("roles", {"metadata": meta("reader")}, group="rbac.authorization.k8s.io")
    assert role == {"Name": "reader", "Created At": ago(minutes=5)}
    crd = tables.column_definitions(REGISTRY.by_kind("apiextensions.k8s.io", "CustomResourceDefinition")[0])
    assert [c["name"] for c in crd] == ["Name", "Created At"]
    assert crd[1]["type"] == "date"


# --- pods -------------------------------------------------------------------


def test_running_pod_shows_ready_count_waiting_reason_and_recent_restart() -> None:
    pod = {
        "metadata": meta("web"),
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
                {
                    "name": "b",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}},
                },
            ],
        },
    }
    assert row("pods", pod) == {
        "Name": "web",
        "Ready": "1/2",
        "Status": "CrashLoopBackOff",
        "Restarts": "3 (2m ago)",
        "Age": "5m",
        "IP": "10.0.0.5",
        "Node": "node-1",
        "Nominated Node": "<none>",
        "Readiness Gates": "<none>",
    }


def test_healthy_pod_shows_phase_and_zero_restarts() -> None:
    pod = {
        "metadata": meta("web"),
        "spec": {"containers": [{"name": "a"}], "readinessGates": [{"conditionType": "example.com/ready"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "example.com/ready", "status": "True"}],
            "containerStatuses": [{"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}}],
        },
    }
    cells = row("pods", pod)
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("1/1", "Running", "0")
    assert (cells["IP"], cells["Node"], cells["Readiness Gates"]) == ("<none>", "<none>", "1/1")


def test_deleted_pod_shows_terminating_unless_already_finished() -> None:
    running = {
        "metadata": meta("web", deletionTimestamp=ago(seconds=1)),
        "spec": {"containers": [{"name": "a"}]},
        "status": {"phase": "Running"},
    }
    assert row("pods", running)["Status"] == "Terminating"
    done = {**running, "status": {"phase": "Succeeded"}}
    assert row("pods", done)["Status"] == "Succeeded"


def test_finished_pods_carry_a_completed_row_condition() -> None:
    pod = {
        "metadata": meta("job-1"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "a", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ],
        },
    }
    [only] = tables.to_table(rt("", "pods"), [pod], now=NOW)["rows"]
    assert only["cells"][2] == "Completed"
    assert only["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_initializing_pod_shows_init_progress_and_failures() -> None:
    spec = {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]}
    pending = {
        "metadata": meta("p"),
        "spec": spec,
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}},
            ],
        },
    }
    assert row("pods", pending)["Status"] == "Init:1/2"
    failing = {
        **pending,
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [
                {"name": "i1", "restartCount": 2, "state": {"terminated": {"exitCode": 3}}}
            ],
        },
    }
    cells = row("pods", failing)
    assert cells["Status"] == "Init:ExitCode:3"
    assert cells["Restarts"] == "2"


def test_restartable_init_containers_count_as_containers() -> None:
    pod = {
        "metadata": meta("p"),
        "spec": {
            "initContainers": [{"name": "sidecar", "restartPolicy": "Always"}],
            "containers": [{"name": "a"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [
                {
                    "name": "sidecar",
                    "started": True,
                    "ready": True,
                    "restartCount": 1,
                    "state": {"running": {}},
                }
            ],
            "containerStatuses": [{"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}}],
        },
    }
    cells = row("pods", pod)
    assert (cells["Ready"], cells["Status"], cells["Restarts"]) == ("2/2", "Running", "1")


# --- nodes, storage -------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "unschedulable", "expected"),
    [
        ([{"type": "Ready", "status": "True"}], False, "Ready"),
        (
            [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False"}],
            False,
            "NotReady",
        ),
        ([{"type": "Ready", "status": "Unknown"}], True, "NotReady,SchedulingDisabled"),
        ([], False, "Unknown"),
    ],
)
def test_node_status_comes_from_the_ready_condition(
    conditions: list[dict[str, str]], unschedulable: bool, expected: str
) -> None:
    node = {
        "metadata": meta("n1"),
        "spec": {"unschedulable": unschedulable},
        "status": {"conditions": conditions},
    }
    assert row("nodes", node)["Status"] == expected


def test_node_row_shows_roles_version_and_addresses() -> None:
    node = {
        "metadata": meta(
            "n1",
            labels={
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/worker": "",
                "x": "y",
            },
        ),
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian",
                "containerRuntimeVersion": "containerd://2",
            },
            "addresses": [
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "Hostname", "address": "n1"},
            ],
        },
    }
    assert row("nodes", node) == {
        "Name": "n1",
        "Status": "Ready",
        "Roles": "control-plane,worker",
        "Age": "5m",
        "Version": "v1.32.0",
        "Internal-IP": "172.18.0.2",
        "External-IP": "<none>",
        "OS-Image": "Debian",
        "Kernel-Version": "<unknown>",
        "Container-Runtime": "containerd://2",
    }
    assert row("nodes", {"metadata": meta("n2")})["Roles"] == "<none>"


def test_persistent_volume_row() -> None:
    pv = {
        "metadata": meta("pv-1"),
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadOnlyMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "app", "name": "data"},
            "storageClassName": "fast",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }
    assert row("persistentvolumes", pv) == {
        "Name": "pv-1",
        "Capacity": "10Gi",
        "Access Modes": "RWO,ROX",
        "Reclaim Policy": "Retain",
        "Status": "Bound",
        "Claim": "app/data",
        "StorageClass": "fast",
        "VolumeAttributesClass": "<unset>",
        "Reason": "",
        "Age": "5m",
        "VolumeMode": "Filesystem",
    }


def test_persistent_volume_claim_shows_capacity_only_once_bound() -> None:
    pending = {
        "metadata": meta("data"),
        "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"},
    }
    assert row("persistentvolumeclaims", pending) == {
        "Name": "data",
        "Status": "Pending",
        "Volume": "",
        "Capacity": "",
        "Access Modes": "",
        "StorageClass": "fast",
        "VolumeAttributesClass": "<unset>",
        "Age": "5m",
        "VolumeMode": "<unset>",
    }
    bound = {
        "metadata": meta("data", deletionTimestamp=ago(seconds=1)),
        "spec": {"volumeName": "pv-1", "storageClassName": "fast"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOncePod"]},
    }
    cells = row("persistentvolumeclaims", bound)
    assert (cells["Status"], cells["Volume"], cells["Capacity"], cells["Access Modes"]) == (
        "Terminating",
        "pv-1",
        "1Gi",
        "RWOP",
    )


def test_storage_class_marks_the_default_and_fills_in_defaults() -> None:
    default = {
        "metadata": meta("standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    assert row("storageclasses", default, group="storage.k8s.io") == {
        "Name": "standard (default)",
        "Provisioner": "rancher.io/local-path",
        "ReclaimPolicy": "Delete",
        "VolumeBindingMode": "WaitForFirstConsumer",
        "AllowVolumeExpansion": False,
        "Age": "5m",
    }
    other = {
        "metadata": meta("fast"),
        "provisioner": "csi",
        "reclaimPolicy": "Retain",
        "allowVolumeExpansion": True,
    }
    cells = row("storageclasses", other, group="storage.k8s.io")
    assert (cells["Name"], cells["ReclaimPolicy"], cells["AllowVolumeExpansion"]) == ("fast", "Retain", True)


# --- other built-ins ------------------------------------------------------------------


def test_deployment_row() -> None:
    deployment = {
        "metadata": meta("web"),
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            },
            "template": {
                "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "envoy"}]}
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row("deployments", deployment, group="apps") == {
        "Name": "web",
        "Ready": "2/3",
        "Up-to-date": 3,
        "Available": 2,
        "Age": "5m",
        "Containers": "a,b",
        "Images": "nginx,envoy",
        "Selector": "app=web,tier",
    }


def test_service_row_lists_ports_with_node_ports() -> None:
    service = {
        "metadata": meta("web"),
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
            "selector": {"app": "web"},
        },
    }
    assert row("services", service) == {
        "Name": "web",
        "Type": "NodePort",
        "Cluster-IP": "10.96.0.10",
        "External-IP": "<none>",
        "Port(s)": "80:30080/TCP,53/UDP",
        "Age": "5m",
        "Selector": "app=web",
    }
    pending = {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}}
    cells = row("services", pending)
    assert (cells["External-IP"], cells["Port(s)"], cells["Selector"]) == ("<pending>", "443/TCP", "<none>")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, "Pending"),
        ({"conditions": [{"type": "Approved", "status": "True"}]}, "Approved"),
        ({"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}, "Approved,Issued"),
        (
            {"conditions": [{"type": "Denied", "status": "True"}, {"type": "Failed", "status": "True"}]},
            "Denied,Failed",
        ),
    ],
)
def test_certificate_signing_request_condition(status: dict[str, Any], expected: str) -> None:
    csr = {
        "metadata": meta("csr-1"),
        "spec": {
            "signerName": "kubernetes.io/kube-apiserver-client",
            "username": "alice",
            "expirationSeconds": 86400,
        },
        "status": status,
    }
    cells = row("certificatesigningrequests", csr, group="certificates.k8s.io")
    assert cells["Condition"] == expected
    assert (cells["SignerName"], cells["Requestor"], cells["RequestedDuration"]) == (
        "kubernetes.io/kube-apiserver-client",
        "alice",
        "24h",
    )


def test_event_row_names_the_object_and_ages() -> None:
    event = {
        "metadata": meta("web.17a"),
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
        "reason": "Pulled",
        "message": "Pulled image  \n",
        "type": "Normal",
        "firstTimestamp": ago(hours=1),
        "lastTimestamp": ago(seconds=30),
        "count": 4,
        "source": {"component": "kubelet", "host": "node-1"},
    }
    assert row("events", event) == {
        "Last Seen": "30s",
        "Type": "Normal",
        "Reason": "Pulled",
        "Object": "pod/web",
        "Subobject": "spec.containers{a}",
        "Source": "kubelet, node-1",
        "Message": "Pulled image",
        "First Seen": "60m",
        "Count": 4,
        "Name": "web.17a",
    }


def test_events_k8s_io_events_print_like_core_events() -> None:
    event = {
        "metadata": meta("e"),
        "regarding": {"kind": "Node", "name": "n1"},
        "note": "Starting",
        "reason": "Starting",
        "type": "Normal",
        "eventTime": ago(seconds=20),
        "reportingController": "kubelet",
    }
    cells = row("events", event, group="events.k8s.io")
    assert (cells["Last Seen"], cells["Object"], cells["Message"], cells["Count"], cells["Source"]) == (
        "20s",
        "node/n1",
        "Starting",
        1,
        "kubelet",
    )


def test_counting_rows_for_config_maps_secrets_and_service_accounts() -> None:
    assert (
        row("configmaps", {"metadata": meta("c"), "data": {"a": "1"}, "binaryData": {"b": "AA=="}})["Data"]
        == 2
    )
    secret = row("secrets", {"metadata": meta("s"), "type": "Opaque", "data": {"a": "MQ=="}})
    assert (secret["Type"], secret["Data"]) == ("Opaque", 1)
    assert row("serviceaccounts", {"metadata": meta("default")})["Secrets"] == 0
    assert row("namespaces", {"metadata": meta("prod"), "status": {"phase": "Active"}})["Status"] == "Active"


def test_endpoints_and_leases() -> None:
    endpoints = {
        "metadata": meta("web"),
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
                "ports": [{"port": 8080}],
            }
        ],
    }
    assert (
        row("endpoints", endpoints)["Endpoints"] == "10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more..."
    )
    assert row("endpoints", {"metadata": meta("none")})["Endpoints"] == "<none>"
    lease = {"metadata": meta("leader"), "spec": {"holderIdentity": "controller-0"}}
    assert row("leases", lease, group="coordination.k8s.io") == {
        "Name": "leader",
        "Holder": "controller-0",
        "Age": "5m",
    }


def test_job_and_cron_job_rows() -> None:
    job = {
        "metadata": meta("backup"),
        "spec": {"completions": 1, "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        "status": {
            "succeeded": 1,
            "startTime": ago(minutes=4),
            "completionTime": ago(minutes=3, seconds=30),
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    cells = row("jobs", job, group="batch")
    assert (cells["Status"], cells["Completions"], cells["Duration"]) == ("Complete", "1/1", "30s")
    cron = {"metadata": meta("nightly"), "spec": {"schedule": "0 1 * * *", "suspend": False}}
    cells = row("cronjobs", cron, group="batch")
    assert (
        cells["Schedule"],
        cells["Timezone"],
        cells["Suspend"],
        cells["Active"],
        cells["Last Schedule"],
    ) == (
        "0 1 * * *",
        "<none>",
        "False",
        0,
        "<none>",
    )


# --- custom resources -------------------------------------------------------------------


def widget(columns: tuple[dict[str, object], ...]) -> ResourceType:
    return ResourceType(
        group="example.com",
        version="v1",
        resource="widgets",
        kind="Widget",
        namespaced=True,
        builtin=False,
        printer_columns=columns,
    )


WIDGET = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": meta("w1"),
    "spec": {"replicas": 3, "ratio": 0.5, "enabled": True, "tags": ["a", "b"]},
    "status": {
        "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
        "lastSync": ago(hours=2),
    },
}


def test_custom_resources_print_their_printer_columns() -> None:
    columns: tuple[dict[str, object], ...] = (
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "description": "How many."},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1, "format": "float"},
        {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled"},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
        {"name": "Synced", "type": "date", "jsonPath": ".status.lastSync"},
        {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
        {"name": "Created", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    )
    table = tables.to_table(widget(columns), [WIDGET], now=NOW)
    definitions = table["columnDefinitions"]
    assert [c["name"] for c in definitions] == [
        "Name",
        "Replicas",
        "Ready",
        "Ratio",
        "Enabled",
        "Tags",
        "Synced",
        "Missing",
        "Created",
    ]
    assert definitions[1] == {
        "name": "Replicas",
        "type": "integer",
        "format": "",
        "description": "How many.",
        "priority": 0,
    }
    assert (definitions[3]["priority"], definitions[3]["format"]) == (1, "float")
    assert table["rows"][0]["cells"] == ["w1", 3, "True", 0.5, True, '["a","b"]', "120m", None, "5m"]


def test_custom_resources_without_columns_get_an_age_column() -> None:
    table = tables.to_table(widget(()), [WIDGET], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["w1", "5m"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (".spec.replicas", [3]),
        ("{.spec.replicas}", [3]),
        ("$.spec.tags[1]", ["b"]),
        (".spec.tags[-1]", ["b"]),
        (".spec.tags[*]", ["a", "b"]),
        (".spec.tags[0:1]", ["a"]),
        (".status.conditions[*].type", ["Synced", "Ready"]),
        (".status.conditions[?(@.type=='Synced')].status", ["False"]),
        (".status.conditions[?(@.status)].type", ["Synced", "Ready"]),
        (".metadata['name']", ["w1"]),
        (".spec.absent.deeper", []),
        (".spec.tags[5]", []),
    ],
)
def test_jsonpath_subset(expr: str, expected: list[Any]) -> None:
    assert tables.jsonpath(expr, WIDGET) == expected


def test_unsupported_jsonpath_leaves_the_cell_empty() -> None:
    table = tables.to_table(
        widget(({"name": "Deep", "type": "string", "jsonPath": "..name"},)), [WIDGET], now=NOW
    )
    assert table["rows"][0]["cells"] == ["w1", None]
