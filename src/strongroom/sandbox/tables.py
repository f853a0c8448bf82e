"""Server-side printing: `meta.k8s.io/v1` Table responses.

`kubectl get` does not format objects itself: it asks the server for a Table
(``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``) and prints the
columns it is given, including the ``-o wide`` ones (priority > 0), which the
server always sends. So the columns and cell values here are what a user sees,
and they follow kube-apiserver 1.32's printers: the same column names, types
and cell formats (``1/2``, ``80/TCP``, ``Approved,Issued``, ages like ``3m2s``).

Custom resources print their CRD's additionalPrinterColumns, evaluated with a
small JSONPath subset. Everything is a pure function of the objects and `now`,
so tests can pin the clock.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from strongroom.sandbox.discovery import parse_accept
from strongroom.sandbox.resources import ResourceType

JSON = dict[str, Any]

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
_TABLE_PARAMS = {"as": "Table", "v": "v1", "g": "meta.k8s.io"}

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")

NONE = "<none>"
UNSET = "<unset>"
UNKNOWN = "<unknown>"


def wants_table(accept_header: str) -> bool:
    """True when the Accept list names the meta.k8s.io/v1 Table media type (in any parameter order)."""
    for media, params in parse_accept(accept_header):
        if media == "application/json" and all(params.get(k) == v for k, v in _TABLE_PARAMS.items()):
            return True
    return False


# ---------------------------------------------------------------------------
# Durations and timestamps


def human_duration(d: timedelta) -> str:
    """Kubernetes' HumanDuration: coarser units the older something is.

    A skew of up to two seconds into the future reads "0s", because clocks of
    the machines involved are never perfectly in step.
    """
    micros = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    # Truncate toward zero, as a Go integer conversion does.
    seconds = micros // 1_000_000 if micros >= 0 else -((-micros) // 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp (Time or MicroTime) as an aware datetime; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def age(timestamp: object, now: datetime) -> str:
    """Time since `timestamp` as kubectl shows it, or "<unknown>" when there is none."""
    when = parse_time(timestamp)
    if when is None:
        return UNKNOWN
    return human_duration(_aware(now) - when)


# ---------------------------------------------------------------------------
# Small accessors: objects are plain JSON, any level may be missing or null.


def _get(obj: object, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _dict(obj: object, *path: str) -> Mapping[str, Any]:
    value = _get(obj, *path)
    return value if isinstance(value, Mapping) else {}


def _list(obj: object, *path: str) -> list[Any]:
    value = _get(obj, *path)
    return value if isinstance(value, list) else []


def _str(obj: object, *path: str) -> str:
    value = _get(obj, *path)
    return value if isinstance(value, str) else ""


def _int(obj: object, *path: str, default: int = 0) -> int:
    value = _get(obj, *path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value)


def _name(obj: object) -> str:
    return _str(obj, "metadata", "name")


def _age(obj: object, now: datetime) -> str:
    return age(_get(obj, "metadata", "creationTimestamp"), now)


def format_labels(labels: object) -> str:
    """`k=v,k2=v2` sorted by key, or "<none>"."""
    if not isinstance(labels, Mapping) or not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: object) -> str:
    """A LabelSelector in the text form `kubectl get -l` accepts; "" selects everything (or nothing)."""
    if not isinstance(selector, Mapping):
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in _dict(selector, "matchLabels").items():
        requirements.append((key, f"{key}={value}"))
    for expr in _list(selector, "matchExpressions"):
        key = _str(expr, "key")
        values = ",".join(sorted(str(v) for v in _list(expr, "values")))
        operator = _str(expr, "operator")
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(operator)
        if text is None:
            return "<error>"
        requirements.append((key, text))
    requirements.sort(key=lambda r: r[0])
    return ",".join(text for _, text in requirements)


def format_selector(selector: object) -> str:
    return selector_string(selector) or NONE


def _containers_cells(pod_spec: object) -> list[str]:
    containers = _list(pod_spec, "containers")
    return [",".join(_str(c, "name") for c in containers), ",".join(_str(c, "image") for c in containers)]


# ---------------------------------------------------------------------------
# Columns


def _column(name: str, description: str, type_: str = "string", priority: int = 0, fmt: str = "") -> JSON:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically."
)
_CREATION_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. "
    "It is represented in RFC3339 form and is in UTC."
)
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."


def _name_col() -> JSON:
    return _column("Name", _NAME_DOC, fmt="name")


def _age_col() -> JSON:
    return _column("Age", _CREATION_DOC)


def _wide(name: str, description: str) -> JSON:
    return _column(name, description, priority=1)


Cells = Callable[[JSON, datetime], list[Any]]
Row = tuple[list[Any], list[JSON]]  # cells, row conditions


# ---------------------------------------------------------------------------
# Pods


def _restartable(container: object) -> bool:
    return _str(container, "restartPolicy") == "Always"


def _later(current: datetime | None, candidate: object) -> datetime | None:
    when = parse_time(candidate)
    if when is None:
        return current
    return when if current is None or when > current else current


def _has_condition(conditions: Iterable[Any], type_: str) -> bool:
    return any(_str(c, "type") == type_ and _str(c, "status") == "True" for c in conditions)


def _pod_row(pod: JSON, now: datetime) -> Row:
    spec, status = _dict(pod, "spec"), _dict(pod, "status")
    init_specs = _list(spec, "initContainers")
    init_by_name = {_str(c, "name"): c for c in init_specs}
    total = len(_list(spec, "containers")) + sum(1 for c in init_specs if _restartable(c))
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    conditions = _list(status, "conditions")

    phase = _str(status, "phase")
    reason = _str(status, "reason") or phase
    for condition in conditions:
        if _str(condition, "type") == "PodScheduled" and _str(condition, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for index, cs in enumerate(_list(status, "initContainerStatuses")):
        count = _int(cs, "restartCount")
        restarts += count
        finished = _get(cs, "lastState", "terminated", "finishedAt")
        last_restart = _later(last_restart, finished)
        sidecar = _restartable(init_by_name.get(_str(cs, "name")))
        if sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        terminated = _get(cs, "state", "terminated")
        waiting = _get(cs, "state", "waiting")
        if isinstance(terminated, Mapping) and _int(terminated, "exitCode") == 0:
            continue
        if sidecar and _get(cs, "started") is True:
            if _get(cs, "ready") is True:
                ready += 1
            continue
        if isinstance(terminated, Mapping):
            if _str(terminated, "reason"):
                reason = "Init:" + _str(terminated, "reason")
            elif _int(terminated, "signal"):
                reason = f"Init:Signal:{_int(terminated, 'signal')}"
            else:
                reason = f"Init:ExitCode:{_int(terminated, 'exitCode')}"
        elif isinstance(waiting, Mapping) and _str(waiting, "reason") not in ("", "PodInitializing"):
            reason = "Init:" + _str(waiting, "reason")
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _has_condition(conditions, "Initialized"):
        # Failed init containers' restarts stop mattering once the pod is initialized;
        # only sidecars (restartable init containers) keep counting.
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(_list(status, "containerStatuses")):
            restarts += _int(cs, "restartCount")
            last_restart = _later(last_restart, _get(cs, "lastState", "terminated", "finishedAt"))
            waiting = _get(cs, "state", "waiting")
            terminated = _get(cs, "state", "terminated")
            if isinstance(waiting, Mapping) and _str(waiting, "reason"):
                reason = _str(waiting, "reason")
            elif isinstance(terminated, Mapping) and _str(terminated, "reason"):
                reason = _str(terminated, "reason")
            elif isinstance(terminated, Mapping):
                signal = _int(terminated, "signal")
                reason = f"Signal:{signal}" if signal else f"ExitCode:{_int(terminated, 'exitCode')}"
            elif _get(cs, "ready") is True and isinstance(_get(cs, "state", "running"), Mapping):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(conditions, "Ready") else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and _str(status, "reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration(_aware(now) - last_restart)} ago)"

    pod_ips = _list(status, "podIPs")
    pod_ip = (_str(pod_ips[0], "ip") if pod_ips else "") or _str(status, "podIP")
    gates = _list(spec, "readinessGates")
    readiness = NONE
    if gates:
        by_type: dict[str, str] = {}
        for condition in conditions:
            by_type.setdefault(_str(condition, "type"), _str(condition, "status"))
        passed = sum(1 for g in gates if by_type.get(_str(g, "conditionType")) == "True")
        readiness = f"{passed}/{len(gates)}"

    cells = [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _age(pod, now),
        pod_ip or NONE,
        _str(spec, "nodeName") or NONE,
        _str(status, "nominatedNodeName") or NONE,
        readiness,
    ]
    row_conditions: list[JSON] = []
    if phase == "Succeeded":
        row_conditions = [_completed("Succeeded", "The pod has completed successfully.")]
    elif phase == "Failed":
        row_conditions = [_completed("Failed", "The pod failed.")]
    return cells, row_conditions


def _completed(reason: str, message: str) -> JSON:
    # kubectl reads this to recognise finished pods.
    return {"type": "Completed", "status": "True", "reason": reason, "message": message}


_POD_COLUMNS = [
    _name_col(),
    _column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _column("Status", "The aggregate status of the containers in this pod."),
    _column(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last "
        "container in this pod has restarted.",
    ),
    _age_col(),
    _wide("IP", "podIP address allocated to the pod. Routable at least within the cluster."),
    _wide("Node", "NodeName indicates in which node this pod is scheduled."),
    _wide("Nominated Node", "The node this pod may be scheduled on once a preemption completes."),
    _wide("Readiness Gates", "Pod conditions that must also be true for the pod to be ready."),
]


# ---------------------------------------------------------------------------
# Workloads


def _replicas(obj: JSON) -> int:
    # kube-apiserver defaults spec.replicas to 1 for every workload kind that has it.
    return _int(obj, "spec", "replicas", default=1)


def _deployment(obj: JSON, now: datetime) -> list[Any]:
    return [
        _name(obj),
        f"{_int(obj, 'status', 'readyReplicas')}/{_replicas(obj)}",
        _int(obj, "status", "updatedReplicas"),
        _int(obj, "status", "availableReplicas"),
        _age(obj, now),
        *_containers_cells(_get(obj, "spec", "template", "spec")),
        selector_string(_get(obj, "spec", "selector")),
    ]


def _replica_set(obj: JSON, now: datetime) -> list[Any]:
    return [
        _name(obj),
        _replicas(obj),
        _int(obj, "status", "replicas"),
        _int(obj, "status", "readyReplicas"),
        _age(obj, now),
        *_containers_cells(_get(obj, "spec", "template", "spec")),
        format_selector(_get(obj, "spec", "selector")),
    ]


def _replication_controller(obj: JSON, now: datetime) -> list[Any]:
    return [
        _name(obj),
        _replicas(obj),
        _int(obj, "status", "replicas"),
        _int(obj, "status", "readyReplicas"),
        _age(obj, now),
        *_containers_cells(_get(obj, "spec", "template", "spec")),
        format_labels(_get(obj, "spec", "selector")),
    ]


def _stateful_set(obj: JSON, now: datetime) -> list[Any]:
    return [
        _name(obj),
        f"{_int(obj, 'status', 'readyReplicas')}/{_replicas(obj)}",
        _age(obj, now),
        *_containers_cells(_get(obj, "spec", "template", "spec")),
    ]


def _daemon_set(obj: JSON, now: datetime) -> list[Any]:
    return [
        _name(obj),
        _int(obj, "status", "desiredNumberScheduled"),
        _int(obj, "status", "currentNumberScheduled"),
        _int(obj, "status", "numberReady"),
        _int(obj, "status", "updatedNumberScheduled"),
        _int(obj, "status", "numberAvailable"),
        format_labels(_get(obj, "spec", "template", "spec", "nodeSelector")),
        _age(obj, now),
        *_containers_cells(_get(obj, "spec", "template", "spec")),
        format_selector(_get(obj, "spec", "selector")),
    ]


def _job_condition(obj: JSON, type_: str) -> bool:
    for condition in _list(obj, "status", "conditions"):
        if _str(condition, "type") == type_:
            return _str(condition, "status") == "True"
    return False


def _job(obj: JSON, now: datetime) -> list[Any]:
    succeeded = _int(obj, "status", "succeeded")
    completions = _get(obj, "spec", "completions")
    if isinstance(completions, int) and not isinstance(completions, bool):
        progress = f"{succeeded}/{completions}"
    elif _int(obj, "spec", "parallelism") > 1:
        progress = f"{succeeded}/1 of {_int(obj, 'spec', 'parallelism')}"
    else:
        progress = f"{succeeded}/1"
    started = parse_time(_get(obj, "status", "startTime"))
    finished = parse_time(_get(obj, "status", "completionTime"))
    if started is None:
        duration = ""
    elif finished is None:
        duration = human_duration(_aware(now) - started)
    else:
        duration = human_duration(finished - started)
    if _job_condition(obj, "Complete"):
        status = "Complete"
    elif _job_condition(obj, "Failed"):
        status = "Failed"
    elif _get(obj, "metadata", "deletionTimestamp") is not None:
        status = "Terminating"
    elif _job_condition(obj, "Suspended"):
        status = "Suspended"
    elif _job_condition(obj, "FailureTarget"):
        status = "FailureTarget"
    else:
        status = "Running"
    return [
        _name(obj),
        status,
        progress,
        duration,
        _age(obj, now),
        *_containers_cells(_get(obj, "spec", "template", "spec")),
        format_selector(_get(obj, "spec", "selector")),
    ]


def _bool_word(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return UNSET


def _cron_job(obj: JSON, now: datetime) -> list[Any]:
    last = _get(obj, "status", "lastScheduleTime")
    job_spec = _get(obj, "spec", "jobTemplate", "spec")
    return [
        _name(obj),
        _str(obj, "spec", "schedule"),
        _str(obj, "spec", "timeZone") or NONE,
        _bool_word(_get(obj, "spec", "suspend")),
        len(_list(obj, "status", "active")),
        age(last, now) if last is not None else NONE,
        _age(obj, now),
        *_containers_cells(_get(job_spec, "template", "spec")),
        format_selector(_get(job_spec, "selector")),
    ]


_WORKLOAD_WIDE = [_wide("Containers", _CONTAINERS_DOC), _wide("Images", _IMAGES_DOC)]


# ---------------------------------------------------------------------------
# Core kinds


def _service_external_ip(svc: JSON) -> str:
    external_ips = [str(ip) for ip in _list(svc, "spec", "externalIPs")]
    kind = _str(svc, "spec", "type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or NONE
    if kind == "LoadBalancer":
        ingress: set[str] = set()
        for entry in _list(svc, "status", "loadBalancer", "ingress"):
            ip_or_host = _str(entry, "ip") or _str(entry, "hostname")
            if ip_or_host:
                ingress.add(ip_or_host)
        addresses = [*sorted(ingress), *external_ips]
        # The server prints wide, so the load-balancer list is never clipped.
        return ",".join(addresses) or "<pending>"
    if kind == "ExternalName":
        return _str(svc, "spec", "externalName")
    return UNKNOWN


def _service(obj: JSON, now: datetime) -> list[Any]:
    cluster_ips = _list(obj, "spec", "clusterIPs")
    # clusterIP is the fallback for objects stored before clusterIPs was defaulted.
    cluster_ip = str(cluster_ips[0]) if cluster_ips else (_str(obj, "spec", "clusterIP") or NONE)
    ports = []
    for port in _list(obj, "spec", "ports"):
        protocol = _str(port, "protocol") or "TCP"
        node_port = _int(port, "nodePort")
        number = _int(port, "port")
        ports.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return [
        _name(obj),
        _str(obj, "spec", "type"),
        cluster_ip,
        _service_external_ip(obj),
        ",".join(ports) or NONE,
        _age(obj, now),
        format_labels(_get(obj, "spec", "selector")),
    ]


def _join_host_port(host: str, port: int) -> str:
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = ":" in host
    return f"[{host}]:{port}" if is_v6 else f"{host}:{port}"


def _endpoints(obj: JSON, now: datetime) -> list[Any]:
    return [_name(obj), format_endpoints(obj), _age(obj, now)]


def format_endpoints(obj: JSON) -> str:
    """Up to three "ip:port" pairs of an Endpoints object, then "+ N more..."."""
    subsets = _list(obj, "subsets")
    if not subsets:
        return NONE
    shown: list[str] = []
    limit, count, more = 3, 0, False
    for subset in subsets:
        addresses = [_str(a, "ip") for a in _list(subset, "addresses")]
        ports = _list(subset, "ports")
        # Headless services may have addresses without ports.
        targets = [None] if not ports else [_int(p, "port") for p in ports]
        for port in targets:
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(ip if port is None else _join_host_port(ip, port))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _namespace(obj: JSON, now: datetime) -> list[Any]:
    return [_name(obj), _str(obj, "status", "phase"), _age(obj, now)]


def _node_roles(node: JSON) -> str:
    roles: set[str] = set()
    for key, value in _dict(node, "metadata", "labels").items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or NONE


def _node_address(node: JSON, type_: str) -> str:
    for address in _list(node, "status", "addresses"):
        if _str(address, "type") == type_:
            return _str(address, "address")
    return NONE


def _node(obj: JSON, now: datetime) -> list[Any]:
    statuses = []
    ready = [c for c in _list(obj, "status", "conditions") if _str(c, "type") == "Ready"]
    if ready:
        # A later duplicate wins, as when kube builds its condition map.
        statuses.append("Ready" if _str(ready[-1], "status") == "True" else "NotReady")
    else:
        statuses.append("Unknown")
    if _get(obj, "spec", "unschedulable") is True:
        statuses.append("SchedulingDisabled")
    info = _dict(obj, "status", "nodeInfo")
    return [
        _name(obj),
        ",".join(statuses),
        _node_roles(obj),
        _age(obj, now),
        _str(info, "kubeletVersion"),
        _node_address(obj, "InternalIP"),
        _node_address(obj, "ExternalIP"),
        _str(info, "osImage") or UNKNOWN,
        _str(info, "kernelVersion") or UNKNOWN,
        _str(info, "containerRuntimeVersion") or UNKNOWN,
    ]


_ACCESS_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def access_modes(modes: object) -> str:
    """Access modes abbreviated in kube's fixed order, e.g. "RWO,ROX"."""
    present = set(modes) if isinstance(modes, list) else set()
    return ",".join(short for mode, short in _ACCESS_MODE_ABBREVIATIONS if mode in present)


_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


def _volume_class(obj: JSON) -> str:
    annotations = _dict(obj, "metadata", "annotations")
    if _BETA_STORAGE_CLASS in annotations:
        return str(annotations[_BETA_STORAGE_CLASS])
    return _str(obj, "spec", "storageClassName")


def _quantity(value: object) -> str:
    # An absent quantity prints as Go's zero Quantity does.
    return str(value) if value is not None else "0"


def _persistent_volume(obj: JSON, now: datetime) -> list[Any]:
    claim = _dict(obj, "spec", "claimRef")
    phase = _str(obj, "status", "phase")
    if _get(obj, "metadata", "deletionTimestamp") is not None:
        phase = "Terminating"
    return [
        _name(obj),
        _quantity(_get(obj, "spec", "capacity", "storage")),
        access_modes(_get(obj, "spec", "accessModes")),
        _str(obj, "spec", "persistentVolumeReclaimPolicy"),
        phase,
        f"{_str(claim, 'namespace')}/{_str(claim, 'name')}" if claim else "",
        _volume_class(obj),
        _str(obj, "spec", "volumeAttributesClassName") or UNSET,
        _str(obj, "status", "reason"),
        _age(obj, now),
        _str(obj, "spec", "volumeMode") or UNSET,
    ]


def _persistent_volume_claim(obj: JSON, now: datetime) -> list[Any]:
    phase = _str(obj, "status", "phase")
    if _get(obj, "metadata", "deletionTimestamp") is not None:
        phase = "Terminating"
    volume = _str(obj, "spec", "volumeName")
    # Capacity and modes are what the bound volume provides, so only shown once bound.
    capacity = _quantity(_get(obj, "status", "capacity", "storage")) if volume else ""
    modes = access_modes(_get(obj, "status", "accessModes")) if volume else ""
    return [
        _name(obj),
        phase,
        volume,
        capacity,
        modes,
        _volume_class(obj),
        _str(obj, "spec", "volumeAttributesClassName") or UNSET,
        _age(obj, now),
        _str(obj, "spec", "volumeMode") or UNSET,
    ]


def _config_map(obj: JSON, now: datetime) -> list[Any]:
    return [_name(obj), len(_dict(obj, "data")) + len(_dict(obj, "binaryData")), _age(obj, now)]


def _secret(obj: JSON, now: datetime) -> list[Any]:
    return [_name(obj), _str(obj, "type"), len(_dict(obj, "data")), _age(obj, now)]


def _service_account(obj: JSON, now: datetime) -> list[Any]:
    return [_name(obj), len(_list(obj, "secrets")), _age(obj, now)]


def _event_fields(obj: JSON) -> JSON:
    """An events.k8s.io/v1 Event in core/v1 field names; kube prints both kinds from one internal type."""
    if "regarding" not in obj and "note" not in obj and "deprecatedCount" not in obj:
        return obj
    source = _dict(obj, "deprecatedSource")
    return {
        "metadata": obj.get("metadata"),
        "involvedObject": obj.get("regarding"),
        "message": obj.get("note"),
        "reason": obj.get("reason"),
        "type": obj.get("type"),
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount"),
        "source": source,
        "eventTime": obj.get("eventTime"),
        "series": obj.get("series"),
        "reportingComponent": obj.get("reportingController"),
        "reportingInstance": obj.get("reportingInstance"),
    }


def _event(raw: JSON, now: datetime) -> list[Any]:
    obj = _event_fields(raw)
    first = age(_get(obj, "firstTimestamp"), now)
    if parse_time(_get(obj, "firstTimestamp")) is None:
        first = age(_get(obj, "eventTime"), now)
    last = age(_get(obj, "lastTimestamp"), now)
    if parse_time(_get(obj, "lastTimestamp")) is None:
        last = first
    count = _int(obj, "count")
    if isinstance(_get(obj, "series"), Mapping):
        last = age(_get(obj, "series", "lastObservedTime"), now)
        count = _int(obj, "series", "count")
    elif count == 0:
        # Singleton events carry no count in the newer API.
        count = 1
    involved = _dict(obj, "involvedObject")
    target = _str(involved, "kind").lower()
    if _str(involved, "name"):
        target = f"{target}/{_str(involved, 'name')}"
    component = _str(obj, "source", "component") or _str(obj, "reportingComponent")
    host = _str(obj, "source", "host") or _str(obj, "reportingInstance")
    return [
        last,
        _str(obj, "type"),
        _str(obj, "reason"),
        target,
        _str(involved, "fieldPath"),
        f"{component}, {host}" if host else component,
        _str(obj, "message").strip(),
        first,
        count,
        _name(obj),
    ]


def _role_binding(obj: JSON, now: datetime) -> list[Any]:
    users: list[str] = []
    groups: list[str] = []
    service_accounts: list[str] = []
    for subject in _list(obj, "subjects"):
        kind = _str(subject, "kind")
        if kind == "ServiceAccount":
            service_accounts.append(f"{_str(subject, 'namespace')}/{_str(subject, 'name')}")
        elif kind == "User":
            users.append(_str(subject, "name"))
        elif kind == "Group":
            groups.append(_str(subject, "name"))
    return [
        _name(obj),
        f"{_str(obj, 'roleRef', 'kind')}/{_str(obj, 'roleRef', 'name')}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(service_accounts),
    ]


def _is_default_class(obj: JSON) -> bool:
    annotations = _dict(obj, "metadata", "annotations")
    return "true" in (
        annotations.get("storageclass.kubernetes.io/is-default-class"),
        annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
    )


def _storage_class(obj: JSON, now: datetime) -> list[Any]:
    name = _name(obj) + (" (default)" if _is_default_class(obj) else "")
    expansion = _get(obj, "allowVolumeExpansion")
    return [
        name,
        _str(obj, "provisioner"),
        _str(obj, "reclaimPolicy") or "Delete",
        _str(obj, "volumeBindingMode") or "Immediate",
        expansion if isinstance(expansion, bool) else False,
        _age(obj, now),
    ]


def csr_condition(obj: JSON) -> str:
    """Approved/Denied/Pending, then ",Failed" and ",Issued" as they apply."""
    types = {_str(c, "type") for c in _list(obj, "status", "conditions")}
    if "Denied" in types:
        status = "Denied"
    elif "Approved" in types:
        status = "Approved"
    else:
        status = "Pending"
    if "Failed" in types:
        status += ",Failed"
    if _str(obj, "status", "certificate"):
        status += ",Issued"
    return status


def _csr(obj: JSON, now: datetime) -> list[Any]:
    seconds = _get(obj, "spec", "expirationSeconds")
    duration = NONE
    if isinstance(seconds, int) and not isinstance(seconds, bool):
        duration = human_duration(timedelta(seconds=seconds))
    return [
        _name(obj),
        _age(obj, now),
        _str(obj, "spec", "signerName") or NONE,
        _str(obj, "spec", "username"),
        duration,
        csr_condition(obj),
    ]


def _lease(obj: JSON, now: datetime) -> list[Any]:
    return [_name(obj), _str(obj, "spec", "holderIdentity"), _age(obj, now)]


def _ingress(obj: JSON, now: datetime) -> list[Any]:
    rules = _list(obj, "spec", "rules")
    hosts: list[str] = []
    more = False
    for rule in rules:
        # Counting "more" by rules, not hosts, is kube's arithmetic; kept so output matches.
        more = more or len(hosts) == 3
        if not more and _str(rule, "host"):
            hosts.append(_str(rule, "host"))
    host_cell = ",".join(hosts) or "*"
    if hosts and more:
        host_cell = f"{host_cell} + {len(rules) - 3} more..."
    addresses: set[str] = set()
    for entry in _list(obj, "status", "loadBalancer", "ingress"):
        ip_or_host = _str(entry, "ip") or _str(entry, "hostname")
        if ip_or_host:
            addresses.add(ip_or_host)
    return [
        _name(obj),
        _str(obj, "spec", "ingressClassName") or NONE,
        host_cell,
        ",".join(sorted(addresses)),
        "80, 443" if _list(obj, "spec", "tls") else "80",
        _age(obj, now),
    ]


def _network_policy(obj: JSON, now: datetime) -> list[Any]:
    return [_name(obj), format_selector(_get(obj, "spec", "podSelector") or {}), _age(obj, now)]


def _resource_quota(obj: JSON, now: datetime) -> list[Any]:
    hard = _dict(obj, "status", "hard")
    used = _dict(obj, "status", "used")
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.split(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {_quantity(used.get(resource))}/{_quantity(hard[resource])}")
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


def _pod_disruption_budget(obj: JSON, now: datetime) -> list[Any]:
    minimum = _get(obj, "spec", "minAvailable")
    maximum = _get(obj, "spec", "maxUnavailable")
    return [
        _name(obj),
        "N/A" if minimum is None else str(minimum),
        "N/A" if maximum is None else str(maximum),
        _int(obj, "status", "disruptionsAllowed"),
        _age(obj, now),
    ]


def _priority_class(obj: JSON, now: datetime) -> list[Any]:
    default = _get(obj, "globalDefault")
    return [
        _name(obj),
        _int(obj, "value"),
        default if isinstance(default, bool) else False,
        _age(obj, now),
        _str(obj, "preemptionPolicy"),
    ]


# ---------------------------------------------------------------------------
# The printer table


_SELECTOR_DOC = "Label selector for the pods this object manages."

_PRINTERS: dict[tuple[str, str], tuple[list[JSON], Cells]] = {
    ("apps", "deployments"): (
        [
            _name_col(),
            _column("Ready", "Number of the pod with ready state"),
            _column(
                "Up-to-date",
                "Total number of non-terminated pods targeted by this deployment that have the desired "
                "template spec.",
            ),
            _column(
                "Available",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this "
                "deployment.",
            ),
            _age_col(),
            *_WORKLOAD_WIDE,
            _wide("Selector", _SELECTOR_DOC),
        ],
        _deployment,
    ),
    ("apps", "replicasets"): (
        [
            _name_col(),
            _column("Desired", "The number of desired replicas.", "integer"),
            _column("Current", "The most recently observed number of replicas.", "integer"),
            _column("Ready", "The number of ready replicas.", "integer"),
            _age_col(),
            *_WORKLOAD_WIDE,
            _wide("Selector", _SELECTOR_DOC),
        ],
        _replica_set,
    ),
    ("", "replicationcontrollers"): (
        [
            _name_col(),
            _column("Desired", "The number of desired replicas.", "integer"),
            _column("Current", "The most recently observed number of replicas.", "integer"),
            _column("Ready", "The number of ready replicas.", "integer"),
            _age_col(),
            *_WORKLOAD_WIDE,
            _wide("Selector", _SELECTOR_DOC),
        ],
        _replication_controller,
    ),
    ("apps", "statefulsets"): (
        [_name_col(), _column("Ready", "Number of the pod with ready state"), _age_col(), *_WORKLOAD_WIDE],
        _stateful_set,
    ),
    ("apps", "daemonsets"): (
        [
            _name_col(),
            _column("Desired", "The total number of nodes that should be running the daemon pod.", "integer"),
            _column("Current", "The number of nodes running at least one daemon pod.", "integer"),
            _column("Ready", "The number of nodes with a ready daemon pod.", "integer"),
            _column("Up-to-date", "The number of nodes running the updated daemon pod.", "integer"),
            _column("Available", "The number of nodes with an available daemon pod.", "integer"),
            _column("Node Selector", "The node labels the daemon pods are restricted to."),
            _age_col(),
            *_WORKLOAD_WIDE,
            _wide("Selector", _SELECTOR_DOC),
        ],
        _daemon_set,
    ),
    ("batch", "jobs"): (
        [
            _name_col(),
            _column("Status", "Status of the job."),
            _column("Completions", "The number of pods which reached phase Succeeded."),
            _column("Duration", "Time required to complete the job."),
            _age_col(),
            *_WORKLOAD_WIDE,
            _wide("Selector", _SELECTOR_DOC),
        ],
        _job,
    ),
    ("batch", "cronjobs"): (
        [
            _name_col(),
            _column("Schedule", "The schedule in Cron format."),
            _column("Timezone", "The time zone name for the given schedule."),
            _column("Suspend", "Whether subsequent executions are suspended.", "boolean"),
            _column("Active", "The number of currently running jobs.", "integer"),
            _column("Last Schedule", "When the job was last successfully scheduled."),
            _age_col(),
            *_WORKLOAD_WIDE,
            _wide("Selector", _SELECTOR_DOC),
        ],
        _cron_job,
    ),
    ("", "services"): (
        [
            _name_col(),
            _column("Type", "How the Service is exposed."),
            _column("Cluster-IP", "The IP address of the service, usually assigned randomly."),
            _column(
                "External-IP",
                "IP addresses for which nodes in the cluster also accept traffic for this service.",
            ),
            _column("Port(s)", "The list of ports that are exposed by this service."),
            _age_col(),
            _wide(
                "Selector", "Route service traffic to pods with label keys and values matching this selector."
            ),
        ],
        _service,
    ),
    ("", "endpoints"): (
        [
            _name_col(),
            _column("Endpoints", "The set of addresses and ports that comprise a service."),
            _age_col(),
        ],
        _endpoints,
    ),
    ("", "namespaces"): (
        [_name_col(), _column("Status", "The status of the namespace"), _age_col()],
        _namespace,
    ),
    ("", "nodes"): (
        [
            _name_col(),
            _column("Status", "The status of the node"),
            _column("Roles", "The roles of the node"),
            _age_col(),
            _column("Version", "Kubelet Version reported by the node."),
            _wide("Internal-IP", "List of addresses reachable to the node."),
            _wide("External-IP", "List of addresses reachable to the node."),
            _wide("OS-Image", "OS Image reported by the node."),
            _wide("Kernel-Version", "Kernel Version reported by the node."),
            _wide("Container-Runtime", "ContainerRuntime Version reported by the node."),
        ],
        _node,
    ),
    ("", "persistentvolumes"): (
        [
            _name_col(),
            _column("Capacity", "The capacity of the persistent volume."),
            _column("Access Modes", "All ways the volume can be mounted."),
            _column("Reclaim Policy", "What happens to the volume when released from its claim."),
            _column("Status", "The phase of the volume."),
            _column("Claim", "The claim bound to this volume."),
            _column("StorageClass", "StorageClass of the pv"),
            _column("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
            _column("Reason", "A brief CamelCase string that describes any failure."),
            _age_col(),
            _wide("VolumeMode", "Whether the volume is a formatted filesystem or a raw block device."),
        ],
        _persistent_volume,
    ),
    ("", "persistentvolumeclaims"): (
        [
            _name_col(),
            _column("Status", "The phase of the claim."),
            _column("Volume", "The binding reference to the PersistentVolume backing this claim."),
            _column("Capacity", "The actual resources of the underlying volume."),
            _column("Access Modes", "The access modes the volume backing the claim has."),
            _column("StorageClass", "StorageClass of the pvc"),
            _column("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
            _age_col(),
            _wide("VolumeMode", "Whether the volume is a formatted filesystem or a raw block device."),
        ],
        _persistent_volume_claim,
    ),
    ("", "configmaps"): (
        [_name_col(), _column("Data", "Configuration data."), _age_col()],
        _config_map,
    ),
    ("", "secrets"): (
        [
            _name_col(),
            _column("Type", "Used to facilitate programmatic handling of secret data."),
            _column("Data", "Secret data."),
            _age_col(),
        ],
        _secret,
    ),
    ("", "serviceaccounts"): (
        [
            _name_col(),
            _column("Secrets", "Secrets pods running as this service account may use."),
            _age_col(),
        ],
        _service_account,
    ),
    ("", "resourcequotas"): (
        [
            _name_col(),
            _column(
                "Request", "Request represents a minimum amount of cpu/memory that a container may consume."
            ),
            _column(
                "Limit",
                "Limits control the maximum amount of cpu/memory that a container may use independent of "
                "contention on the node.",
            ),
            _age_col(),
        ],
        _resource_quota,
    ),
    ("rbac.authorization.k8s.io", "rolebindings"): (
        [
            _name_col(),
            _column("Role", "The role this binding grants."),
            _age_col(),
            _wide("Users", "Users in the roleBinding"),
            _wide("Groups", "Groups in the roleBinding"),
            _wide("ServiceAccounts", "ServiceAccounts in the roleBinding"),
        ],
        _role_binding,
    ),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): (
        [
            _name_col(),
            _column("Role", "The cluster role this binding grants."),
            _age_col(),
            _wide("Users", "Users in the clusterRoleBinding"),
            _wide("Groups", "Groups in the clusterRoleBinding"),
            _wide("ServiceAccounts", "ServiceAccounts in the clusterRoleBinding"),
        ],
        _role_binding,
    ),
    ("storage.k8s.io", "storageclasses"): (
        [
            _name_col(),
            _column("Provisioner", "The provisioner of volumes of this class."),
            _column("ReclaimPolicy", "What happens to dynamically provisioned volumes when released."),
            _column("VolumeBindingMode", "When volumes are bound and provisioned."),
            _column("AllowVolumeExpansion", "Whether volumes of this class can be expanded."),
            _age_col(),
        ],
        _storage_class,
    ),
    ("certificates.k8s.io", "certificatesigningrequests"): (
        [
            _name_col(),
            _age_col(),
            _column("SignerName", "The requested signer."),
            _column("Requestor", "The user that created the request."),
            _column("RequestedDuration", "The requested validity of the issued certificate."),
            _column("Condition", "The state of the request."),
        ],
        _csr,
    ),
    ("coordination.k8s.io", "leases"): (
        [_name_col(), _column("Holder", "The identity of the holder of the current lease."), _age_col()],
        _lease,
    ),
    ("networking.k8s.io", "ingresses"): (
        [
            _name_col(),
            _column(
                "Class",
                "The name of the IngressClass resource that should be used for additional configuration",
            ),
            _column("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
            _column("Address", "Address is a list containing ingress points for the load-balancer"),
            _column("Ports", "Ports of TLS configurations that open"),
            _age_col(),
        ],
        _ingress,
    ),
    ("networking.k8s.io", "networkpolicies"): (
        [_name_col(), _column("Pod-Selector", "The pods this policy applies to."), _age_col()],
        _network_policy,
    ),
    ("policy", "poddisruptionbudgets"): (
        [
            _name_col(),
            _column("Min Available", "The minimum number of pods that must be available."),
            _column("Max Unavailable", "The maximum number of pods that may be unavailable."),
            _column(
                "Allowed Disruptions",
                "Calculated number of pods that may be disrupted at this time.",
                "integer",
            ),
            _age_col(),
        ],
        _pod_disruption_budget,
    ),
    ("scheduling.k8s.io", "priorityclasses"): (
        [
            _name_col(),
            _column("Value", "The priority of pods of this class.", "integer"),
            _column("Global-Default", "Whether this class is the default for pods without one.", "boolean"),
            _age_col(),
            _column("PreemptionPolicy", "Whether pods of this class may preempt lower-priority pods."),
        ],
        _priority_class,
    ),
}

_EVENT_COLUMNS = [
    _column("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    _column("Type", "Type of this event (Normal, Warning)."),
    _column("Reason", "A short, machine-understandable string that gives the reason for the transition."),
    _column("Object", "The object that this event is about."),
    _wide("Subobject", "The part of the object this event is about, if any."),
    _wide("Source", "The component reporting this event."),
    _column("Message", "A human-readable description of the status of this operation."),
    _wide("First Seen", "The time at which the event was first recorded."),
    _wide("Count", "The number of times this event has occurred."),
    {**_wide("Name", _NAME_DOC), "format": "name"},
]

# kube-apiserver's generic convertor, used for kinds without a printer of their own
# (Role, ClusterRole, LimitRange, CustomResourceDefinition, ...).
_DEFAULT_COLUMNS = [_name_col(), _column("Created At", _CREATION_DOC, "date")]


def _default_cells(obj: JSON, now: datetime) -> list[Any]:
    created = parse_time(_get(obj, "metadata", "creationTimestamp"))
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else "0001-01-01T00:00:00Z"
    return [_name(obj), stamp]


# ---------------------------------------------------------------------------
# Custom resources: additionalPrinterColumns


_DEFAULT_CUSTOM_COLUMNS: tuple[dict[str, object], ...] = (
    {"name": "Age", "type": "date", "description": _CREATION_DOC, "jsonPath": ".metadata.creationTimestamp"},
)


def _custom_columns(rt: ResourceType) -> tuple[dict[str, object], ...]:
    # The apiextensions server adds an Age column only when a version declares no columns at all.
    return rt.printer_columns or _DEFAULT_CUSTOM_COLUMNS


def _custom_column_definitions(rt: ResourceType) -> list[JSON]:
    columns = [_name_col()]
    for col in _custom_columns(rt):
        priority = col.get("priority", 0)
        columns.append(
            _column(
                str(col.get("name", "")),
                str(col.get("description", "")),
                str(col.get("type", "string")),
                priority if isinstance(priority, int) else 0,
                str(col.get("format", "") or ""),
            )
        )
    return columns


def _go_text(value: object) -> str:
    """A JSON value printed the way kube's JSONPath printer prints one result."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _custom_cell(type_: str, value: object, now: datetime) -> Any:
    if value is None:
        return None
    if type_ == "string":
        return _go_text(value)
    if isinstance(value, bool):
        return value if type_ == "boolean" else None
    if type_ == "integer" and isinstance(value, int | float):
        return int(value)
    if type_ == "number" and isinstance(value, int | float):
        return float(value)
    if type_ == "date" and isinstance(value, str):
        when = parse_time(value)
        return "<invalid>" if when is None else human_duration(_aware(now) - when)
    return None


def _custom_cells(rt: ResourceType, obj: JSON, now: datetime) -> list[Any]:
    cells: list[Any] = [_name(obj)]
    for col in _custom_columns(rt):
        try:
            results = jsonpath(str(col.get("jsonPath", "")), obj)
        except ValueError:
            results = []
        cells.append(_custom_cell(str(col.get("type", "string")), results[0], now) if results else None)
    return cells


# ---------------------------------------------------------------------------
# JSONPath: the subset CRD printer columns use (fields, indexes, wildcards,
# slices and filters such as [?(@.type=="Ready")]).

_MISSING = object()
_FILTER = re.compile(
    r"""^@((?:\.[^.=!<>\s]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*$""",
)


def _parse_literal(text: str) -> object:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"unsupported literal {text!r}") from None


def _tokens(expr: str) -> list[tuple[str, str]]:
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1].strip()
    if expr.startswith("$"):
        expr = expr[1:]
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(expr):
        char = expr[i]
        if char == ".":
            if expr.startswith("..", i):
                raise ValueError("recursive descent is not supported")
            i += 1
            name = []
            while i < len(expr) and expr[i] not in ".[":
                if expr[i] == "\\" and i + 1 < len(expr):
                    i += 1
                name.append(expr[i])
                i += 1
            if name:
                tokens.append(("field", "".join(name)))
        elif char == "[":
            depth, j = 0, i
            while j < len(expr):
                if expr[j] == "[":
                    depth += 1
                elif expr[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(expr):
                raise ValueError(f"unterminated bracket in {expr!r}")
            inner = expr[i + 1 : j].strip()
            i = j + 1
            if inner == "*":
                tokens.append(("wildcard", ""))
            elif inner.startswith("?(") and inner.endswith(")"):
                tokens.append(("filter", inner[2:-1]))
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                tokens.append(("field", inner[1:-1]))
            elif ":" in inner:
                tokens.append(("slice", inner))
            else:
                tokens.append(("index", inner))
        else:
            raise ValueError(f"unexpected {char!r} in JSONPath {expr!r}")
    return tokens


def _field(value: object, name: str) -> object:
    if isinstance(value, Mapping) and name in value:
        return value[name]
    return _MISSING


def _matches(item: object, condition: str) -> bool:
    match = _FILTER.match(condition.strip())
    if match is None:
        raise ValueError(f"unsupported filter {condition!r}")
    path, operator, literal = match.groups()
    value: object = item
    for name in [p for p in path.split(".") if p]:
        value = _field(value, name)
        if value is _MISSING:
            return False
    if operator is None:
        return True
    expected = _parse_literal(literal)
    if operator == "==":
        return value == expected
    if operator == "!=":
        return value != expected
    if not isinstance(value, int | float) or not isinstance(expected, int | float):
        return False
    return {
        "<": value < expected,
        ">": value > expected,
        "<=": value <= expected,
        ">=": value >= expected,
    }[operator]


def jsonpath(expr: str, obj: object) -> list[Any]:
    """Every value `expr` selects in `obj`; missing keys select nothing rather than failing."""
    values: list[Any] = [obj]
    for kind, arg in _tokens(expr):
        selected: list[Any] = []
        for value in values:
            if kind == "field":
                found = _field(value, arg)
                if found is not _MISSING:
                    selected.append(found)
            elif kind == "wildcard":
                if isinstance(value, list):
                    selected.extend(value)
                elif isinstance(value, Mapping):
                    selected.extend(value.values())
            elif kind == "index" and isinstance(value, list):
                index = int(arg)
                if -len(value) <= index < len(value):
                    selected.append(value[index])
            elif kind == "slice" and isinstance(value, list):
                bounds = [int(p) if p.strip() else None for p in arg.split(":")]
                selected.extend(value[slice(*bounds[:3])])
            elif kind == "filter" and isinstance(value, list):
                selected.extend(item for item in value if _matches(item, arg))
        values = selected
    return values


# ---------------------------------------------------------------------------
# Tables


def column_definitions(rt: ResourceType) -> list[JSON]:
    """The columns of `rt`'s Table, -o wide ones (priority 1) included."""
    if not rt.builtin:
        return _custom_column_definitions(rt)
    if rt.resource == "pods" and rt.group == "":
        return [dict(c) for c in _POD_COLUMNS]
    if rt.resource == "events" and rt.group in ("", "events.k8s.io"):
        return [dict(c) for c in _EVENT_COLUMNS]
    printer = _PRINTERS.get((rt.group, rt.resource))
    columns = printer[0] if printer else _DEFAULT_COLUMNS
    return [dict(c) for c in columns]


def _cells_and_conditions(rt: ResourceType, obj: JSON, now: datetime) -> Row:
    if not rt.builtin:
        return _custom_cells(rt, obj, now), []
    if rt.resource == "pods" and rt.group == "":
        return _pod_row(obj, now)
    if rt.resource == "events" and rt.group in ("", "events.k8s.io"):
        return _event(obj, now), []
    printer = _PRINTERS.get((rt.group, rt.resource))
    cells = printer[1] if printer else _default_cells
    return cells(obj, now), []


def _row_object(obj: JSON, include_object: str) -> JSON | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def _check_include_object(include_object: str) -> str:
    value = include_object or "Metadata"
    if value not in INCLUDE_OBJECT_VALUES:
        # The REST layer turns this into a 400, as kube-apiserver answers.
        raise ValueError(f"unrecognized includeObject value: {include_object!r}")
    return value


def table_row(rt: ResourceType, obj: JSON, *, include_object: str = "Metadata", now: datetime) -> JSON:
    """One row: the cells (wide ones included), and the object as includeObject asks."""
    include = _check_include_object(include_object)
    cells, conditions = _cells_and_conditions(rt, obj, now)
    row: JSON = {"cells": cells}
    if conditions:
        row["conditions"] = conditions
    embedded = _row_object(obj, include)
    if embedded is not None:
        row["object"] = embedded
    return row


def to_table(
    rt: ResourceType,
    objects: Iterable[JSON],
    *,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    remaining: int | None = None,
    now: datetime,
    no_headers: bool = False,
) -> JSON:
    """A Table for a list or a single object (pass a one-element list).

    `no_headers` mirrors TableOptions.noHeaders: the column definitions are left
    out, as kube-apiserver does for all but the first event of a watch.
    """
    include = _check_include_object(include_object)
    metadata: JSON = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [] if no_headers else column_definitions(rt),
        "rows": [table_row(rt, obj, include_object=include, now=now) for obj in objects],
    }


def watch_table(
    rt: ResourceType,
    obj: JSON,
    *,
    include_object: str = "Metadata",
    now: datetime,
    no_headers: bool = False,
) -> JSON:
    """The object of one watch event when the client watches as Table: a one-row Table."""
    resource_version = _str(obj, "metadata", "resourceVersion")
    return to_table(
        rt,
        [obj],
        include_object=include_object,
        resource_version=resource_version,
        now=now,
        no_headers=no_headers,
    )
