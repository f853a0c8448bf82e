"""The resources that run strongroom in a cluster, rendered as plain dicts.

`strongroom install --dry-run` prints them, `strongroom install` applies
them and `strongroom uninstall` uses the same rendering as its inventory of
what to remove, so the three can never disagree about names. Rendering is
pure (options in, dicts out) so it is tested without a cluster, and all
input is checked here, before any request, with the offending flag named.

The shape follows what `velero install` renders (a Namespace, a service
account, a Deployment with a metrics port and prometheus annotations, a
`node-agent` DaemonSet with the kubelet's pod directory mounted) plus, on
request, a CronJob that saves etcd snapshots from a control-plane node the way
`cluster-backup.sh` does, except for the permissions: Velero binds `cluster-admin`; strongroom binds roles that
list what the server and the node agent use (see
docs/decisions/0008-install-rbac.md).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import urllib.parse
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from strongroom import __version__
from strongroom.errors import UsageError
from strongroom.model.proxy import ProxySettings, redact_url

__all__ = [
    "CREDENTIALS_SECRET",
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "ETCD_BACKUP_NAME",
    "LOG_LEVELS",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "METRICS_PORT",
    "NODE_AGENT_NAME",
    "SERVER_NAME",
    "SERVER_RESOURCES",
    "InstallOptions",
    "Resources",
    "cluster_object_name",
    "custom_resource_groups",
    "inventory",
    "node_agent_security_context",
    "parse_quantity",
    "render",
]

JsonObject = dict[str, Any]

DEFAULT_NAMESPACE: Final = "openshift-adp"
DEFAULT_IMAGE: Final = f"strongroom/strongroom:{__version__}"
SERVER_NAME: Final = "strongroom"
NODE_AGENT_NAME: Final = "node-agent"
CREDENTIALS_SECRET: Final = "cloud-credentials"
ETCD_BACKUP_NAME: Final = "strongroom-etcd-backup"
ETCD_BACKUP_COMPONENT: Final = "etcd-backup"
METRICS_PORT: Final = 8085
LOG_LEVELS: Final = ("trace", "debug", "info", "warning", "error", "fatal", "panic")

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "strongroom"
NAME_LABEL: Final = "app.kubernetes.io/name"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
VERSION_LABEL: Final = "app.kubernetes.io/version"

RBAC_GROUP: Final = "rbac.authorization.k8s.io"
HOST_PODS_MOUNT: Final = "/host_pods"
SCRATCH_DIR: Final = "/scratch"
CREDENTIALS_DIR: Final = "/credentials"
# Where the etcd backup pod sees the host's file system (only /etc/kubernetes of it).
ETCD_HOST_ROOT: Final = "/host"
ETCD_HOST_CONFIG_DIR: Final = "/etc/kubernetes"
# Control-plane nodes carry one of these labels (and taints): kubeadm before 1.24 and
# OpenShift label "master", newer kubeadm "control-plane"; some clusters carry both.
CONTROL_PLANE_LABELS: Final = ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")

# Velero's defaults for its server pod (pkg/install/resources.go); the node
# agent's are unset there (BestEffort), and so they are here.
DEFAULT_SERVER_CPU_REQUEST: Final = "500m"
DEFAULT_SERVER_MEMORY_REQUEST: Final = "128Mi"
DEFAULT_SERVER_CPU_LIMIT: Final = "1000m"
DEFAULT_SERVER_MEMORY_LIMIT: Final = "512Mi"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# The reference grammar of the distribution project (domain[:port]/path[:tag][@digest]),
# without IPv6 literals.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_DOMAIN = re.compile(rf"^{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?$")
_IMAGE_REMAINDER = re.compile(
    rf"^{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def _valid_image(reference: str) -> bool:
    """Whether ``reference`` parses as docker does: the first part is a registry only if it looks like one."""
    if not reference or len(reference) > 4096:
        return False
    first, slash, rest = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return bool(_IMAGE_DOMAIN.match(first)) and bool(_IMAGE_REMAINDER.match(rest))
    return bool(_IMAGE_REMAINDER.match(reference))


_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes resource quantity (``500m``, ``128Mi``, ``1e3``); ValueError if malformed."""
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a resource quantity: {text!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"not a resource quantity: {text!r}") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if suffix:
        return number * Decimal(10) ** int(suffix[1:])
    return number


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container; an empty string leaves the value unset."""

    cpu_request: str = ""
    memory_request: str = ""
    cpu_limit: str = ""
    memory_limit: str = ""

    def check(self, flag_prefix: str) -> None:
        values = {
            "cpu-request": self.cpu_request,
            "memory-request": self.memory_request,
            "cpu-limit": self.cpu_limit,
            "memory-limit": self.memory_limit,
        }
        parsed: dict[str, Decimal] = {}
        for field, value in values.items():
            if not value:
                continue
            try:
                parsed[field] = parse_quantity(value)
            except ValueError:
                raise UsageError(
                    f"invalid --{flag_prefix}-{field} {value!r}: not a resource quantity",
                    hint="use a Kubernetes quantity such as 500m or 1 (CPU), 128Mi or 1Gi (memory)",
                ) from None
            if parsed[field] < 0:
                raise UsageError(f"invalid --{flag_prefix}-{field} {value!r}: must not be negative")
        for what in ("cpu", "memory"):
            request, limit = parsed.get(f"{what}-request"), parsed.get(f"{what}-limit")
            if request is not None and limit is not None and limit > 0 and request > limit:
                raise UsageError(
                    f"invalid --{flag_prefix}-{what}-request {values[what + '-request']!r}: "
                    f"greater than --{flag_prefix}-{what}-limit {values[what + '-limit']!r}",
                    hint="a container's request must not exceed its limit",
                )

    def render(self) -> JsonObject:
        requests = {k: v for k, v in (("cpu", self.cpu_request), ("memory", self.memory_request)) if v}
        limits = {k: v for k, v in (("cpu", self.cpu_limit), ("memory", self.memory_limit)) if v}
        rendered: JsonObject = {}
        if requests:
            rendered["requests"] = requests
        if limits:
            rendered["limits"] = limits
        return rendered


SERVER_RESOURCES: Final = Resources(
    DEFAULT_SERVER_CPU_REQUEST,
    DEFAULT_SERVER_MEMORY_REQUEST,
    DEFAULT_SERVER_CPU_LIMIT,
    DEFAULT_SERVER_MEMORY_LIMIT,
)


@dataclass(frozen=True)
class InstallOptions:
    """What `strongroom install` takes; constructing one checks every value (UsageError names the flag)."""

    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    replicas: int = 1
    log_level: str = "info"
    # Off by default, as Velero's install: file-system backup is asked for.
    use_node_agent: bool = False
    privileged_node_agent: bool = False
    # Groups the node agent runs with, to read volumes on root_squash NFS exports.
    node_agent_supplemental_groups: tuple[int, ...] = ()
    kubelet_root_dir: str = "/var/lib/kubelet"
    server_resources: Resources = SERVER_RESOURCES
    node_agent_resources: Resources = Resources()
    # The etcd backup CronJob is rendered only with a schedule; the rest tunes it.
    etcd_backup_schedule: str | None = None
    etcd_backup_location: str = "default"
    etcd_backup_keep_last: int = 7
    etcd_backup_keep_daily: int = 0
    etcd_backup_keep_weekly: int = 0
    etcd_backup_verify: bool = True
    # The cluster-wide proxy, exported to every container strongroom runs (as OLM does for operators).
    proxy: ProxySettings = dataclasses.field(default_factory=ProxySettings)

    def __post_init__(self) -> None:
        if len(self.namespace) > 63 or not _DNS1123_LABEL.match(self.namespace):
            raise UsageError(
                f"invalid --namespace {self.namespace!r}: not a valid namespace name",
                hint="use at most 63 lower-case letters, digits and '-', starting and ending "
                "with a letter or digit (e.g. openshift-adp)",
            )
        if not _valid_image(self.image):
            raise UsageError(
                f"invalid --image {self.image!r}: not an image reference",
                hint="use [registry[:port]/]repository[:tag][@sha256:digest], "
                "e.g. quay.io/example/strongroom:1.0",
            )
        if self.replicas < 1:
            raise UsageError(
                f"invalid --replicas {self.replicas}: at least 1 server is needed",
                hint="uninstall strongroom instead of running it without a server",
            )
        if self.log_level not in LOG_LEVELS:
            raise UsageError(
                f"invalid --log-level {self.log_level!r}", hint=f"use one of {', '.join(LOG_LEVELS)}"
            )
        if not self.kubelet_root_dir.startswith("/"):
            raise UsageError(
                f"invalid --kubelet-root-dir {self.kubelet_root_dir!r}: not an absolute path",
                hint="the kubelet's root directory on the nodes, usually /var/lib/kubelet",
            )
        self.server_resources.check("server")
        self.node_agent_resources.check("node-agent")
        for group in self.node_agent_supplemental_groups:
            if group < 0:
                raise UsageError(
                    f"invalid --node-agent-supplemental-groups: group IDs are not negative, not {group}"
                )
        self._check_etcd_backup()
        for flag, url in (("--http-proxy", self.proxy.http_proxy), ("--https-proxy", self.proxy.https_proxy)):
            _check_proxy_url(flag, url)

    def _check_etcd_backup(self) -> None:
        if self.etcd_backup_schedule is not None:
            _check_cronjob_schedule(self.etcd_backup_schedule)
        location = self.etcd_backup_location
        if len(location) > 253 or not _DNS1123_SUBDOMAIN.match(location):
            raise UsageError(
                f"invalid --etcd-backup-location {location!r}: not a BackupStorageLocation name",
                hint="the name of a BackupStorageLocation in the install namespace, e.g. default",
            )
        for flag, keep in (
            ("--etcd-backup-keep-last", self.etcd_backup_keep_last),
            ("--etcd-backup-keep-daily", self.etcd_backup_keep_daily),
            ("--etcd-backup-keep-weekly", self.etcd_backup_keep_weekly),
        ):
            if keep < 0:
                raise UsageError(
                    f"invalid {flag} {keep}: must not be negative", hint="0 leaves that rule out of pruning"
                )

    @property
    def etcd_backup(self) -> bool:
        """Whether the scheduled etcd backup is part of the installation."""
        return self.etcd_backup_schedule is not None


def _check_proxy_url(flag: str, url: str) -> None:
    if not url:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"invalid {flag} {redact_url(url)!r}: not an http:// or https:// URL with a host",
            hint="e.g. http://proxy.example.com:3128 (as in the cluster's Proxy resource)",
        )


def _check_cronjob_schedule(schedule: str) -> None:
    """Refuse what a CronJob would not run as Velero's cron reads it; UsageError names the flag."""
    # Imported here: the cron library is needed only when a schedule is given.
    from strongroom.model.cron import CronError, parse_cron

    example = "use five fields (minute hour day-of-month month day-of-week), e.g. '0 */6 * * *'"
    if schedule.strip().startswith("@every"):
        # Velero's parser takes "@every <duration>"; Kubernetes documents only the fields and
        # the @hourly ... @yearly macros for CronJobs, so an interval is not relied on.
        raise UsageError(
            f"invalid --etcd-backup-schedule {schedule!r}: a CronJob takes no @every interval",
            hint=example,
        )
    try:
        parse_cron(schedule)
    except CronError as exc:
        raise UsageError(f"invalid --etcd-backup-schedule {schedule!r}: {exc}", hint=example) from None


def cluster_object_name(namespace: str, component: str) -> str:
    """The name of a cluster-scoped object of the installation in ``namespace``.

    ClusterRoles and ClusterRoleBindings are shared by the whole cluster, so
    two installations (two namespaces) need distinct names.
    """
    return f"strongroom-{namespace}-{component}"


def _definitions() -> list[JsonObject]:
    # Imported when rendering: the schemas come from every model, which the
    # command line should not load for commands that install nothing.
    from strongroom.model.crds import crd_manifests

    return crd_manifests()


def custom_resource_groups(crds: list[JsonObject] | None = None) -> dict[str, list[str]]:
    """The plural resource names of strongroom's CRDs (default: all of them), by API group."""
    groups: dict[str, list[str]] = {}
    for crd in _definitions() if crds is None else crds:
        groups.setdefault(crd["spec"]["group"], []).append(crd["spec"]["names"]["plural"])
    return groups


def _labels(options: InstallOptions, component: str | None = None) -> dict[str, str]:
    labels = {
        NAME_LABEL: SERVER_NAME,
        INSTANCE_LABEL: options.namespace,
        MANAGED_BY_LABEL: MANAGED_BY,
        VERSION_LABEL: __version__,
    }
    if component:
        labels[COMPONENT_LABEL] = component
    return labels


def _meta(options: InstallOptions, name: str, component: str | None, *, namespaced: bool) -> JsonObject:
    meta: JsonObject = {"name": name}
    if namespaced:
        meta["namespace"] = options.namespace
    meta["labels"] = _labels(options, component)
    return meta


def _crds(options: InstallOptions, definitions: list[JsonObject]) -> list[JsonObject]:
    crds = []
    for crd in definitions:
        rendered = copy.deepcopy(crd)
        rendered.pop("status", None)
        metadata = rendered.setdefault("metadata", {})
        metadata.pop("creationTimestamp", None)
        # The instance label is left off: CRDs are shared by every installation.
        metadata["labels"] = {
            **(metadata.get("labels") or {}),
            NAME_LABEL: SERVER_NAME,
            MANAGED_BY_LABEL: MANAGED_BY,
            VERSION_LABEL: __version__,
        }
        crds.append(rendered)
    return crds


def _namespace(options: InstallOptions) -> JsonObject:
    meta = _meta(options, options.namespace, None, namespaced=False)
    # The node agent mounts a hostPath and runs as root, and the etcd backup
    # also uses the host's network and runs privileged, which only the
    # "privileged" Pod Security level admits (Velero labels its namespace the
    # same way for its node agent); without them the server alone fits "restricted".
    level = "privileged" if options.use_node_agent or options.etcd_backup else "restricted"
    for mode in ("enforce", "audit", "warn"):
        meta["labels"][f"pod-security.kubernetes.io/{mode}"] = level
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _service_account(options: InstallOptions, name: str, component: str) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(options, name, component, namespaced=True),
    }


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> JsonObject:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


_READ = ["get", "list", "watch"]
_WRITE = ["create", "update", "patch", "delete"]


def _own_resources(
    groups: dict[str, list[str]], verbs: list[str], *, only: set[str] | None = None
) -> list[JsonObject]:
    """Rules over strongroom's custom resources and their status subresources."""
    rules = []
    for group, plurals in groups.items():
        chosen = [p for p in plurals if only is None or p in only]
        if chosen:
            rules.append(_rule([group], chosen + [f"{p}/status" for p in chosen], verbs))
    return rules


def _server_rbac(options: InstallOptions, groups: dict[str, list[str]]) -> list[JsonObject]:
    cluster_name = cluster_object_name(options.namespace, "server")
    cluster_role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": _meta(options, cluster_name, "server", namespaced=False),
        "rules": [
            # A backup reads every resource of every group, CRDs included.
            _rule(["*"], ["*"], _READ),
            # A restore creates and updates any resource (and pods/exec for hooks).
            _rule(["*"], ["*"], _WRITE),
            # Restoring a Role or binding that grants more than the server holds
            # is refused by RBAC's escalation check unless the server may
            # escalate and bind; nothing else needs these verbs.
            _rule([RBAC_GROUP], ["roles", "clusterroles"], ["escalate", "bind"]),
        ],
    }
    role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": _meta(options, SERVER_NAME, "server", namespaced=True),
        # What the server needs in its own namespace to run at all, stated on
        # its own so it survives an administrator narrowing the cluster-wide role.
        "rules": [
            *_own_resources(groups, [*_READ, *_WRITE, "deletecollection"]),
            _rule([""], ["secrets"], _READ),
            _rule(["coordination.k8s.io"], ["leases"], [*_READ, *_WRITE]),
            _rule(["", "events.k8s.io"], ["events"], ["create", "patch"]),
        ],
    }
    return [cluster_role, role, *_bindings(options, cluster_name, SERVER_NAME, SERVER_NAME, "server")]


def _node_agent_rbac(options: InstallOptions, groups: dict[str, list[str]]) -> list[JsonObject]:
    cluster_name = cluster_object_name(options.namespace, NODE_AGENT_NAME)
    cluster_role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": _meta(options, cluster_name, NODE_AGENT_NAME, namespaced=False),
        # It finds the volumes of the pods on its node.
        "rules": [_rule([""], ["pods", "persistentvolumeclaims", "persistentvolumes"], _READ)],
    }
    role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": _meta(options, NODE_AGENT_NAME, NODE_AGENT_NAME, namespaced=True),
        "rules": [
            # The server creates these; the node agent runs them and reports progress.
            *_own_resources(
                groups, [*_READ, "update", "patch"], only={"podvolumebackups", "podvolumerestores"}
            ),
            # Where the repository lives: read only.
            *_own_resources(groups, _READ, only={"backupstoragelocations"}),
            # The repository records it checks before each copy: created on demand, marked Ready or
            # NotReady, and its own duplicate removed when two agents created one at once.
            *_own_resources(
                groups, [*_READ, "create", "update", "patch", "delete"], only={"backuprepositories"}
            ),
            # The location's credentials: read one Secret at a time, never list or write.
            _rule([""], ["secrets"], ["get"]),
            _rule(["", "events.k8s.io"], ["events"], ["create", "patch"]),
        ],
    }
    return [
        cluster_role,
        role,
        *_bindings(options, cluster_name, NODE_AGENT_NAME, NODE_AGENT_NAME, NODE_AGENT_NAME),
    ]


def _etcd_backup_rbac(options: InstallOptions) -> list[JsonObject]:
    cluster_name = cluster_object_name(options.namespace, ETCD_BACKUP_COMPONENT)
    cluster_role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": _meta(options, cluster_name, ETCD_BACKUP_COMPONENT, namespaced=False),
        "rules": [
            # etcd's endpoints come from kube-apiserver's flags (kube-system) or OpenShift's etcd
            # pods (openshift-etcd), and the nodes say which are control-plane members.
            _rule([""], ["pods"], ["get", "list"]),
            _rule([""], ["nodes"], ["get", "list"]),
            # On OpenShift the etcd operator's conditions tell whether etcd is being changed.
            _rule(["config.openshift.io"], ["clusteroperators"], ["get", "list"]),
        ],
    }
    role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "Role",
        "metadata": _meta(options, ETCD_BACKUP_NAME, ETCD_BACKUP_COMPONENT, namespaced=True),
        "rules": [
            # Where the snapshot goes, and that location's credentials (one Secret at a time).
            _rule(["velero.io"], ["backupstoragelocations"], ["get", "list"]),
            _rule([""], ["secrets"], ["get"]),
            # OpenShift admits a privileged pod with a hostPath only under the "privileged"
            # SecurityContextConstraints, which its service account must be allowed to use in
            # this namespace; on other clusters the rule names a group that does not exist.
            {
                "apiGroups": ["security.openshift.io"],
                "resources": ["securitycontextconstraints"],
                "resourceNames": ["privileged"],
                "verbs": ["use"],
            },
        ],
    }
    return [
        cluster_role,
        role,
        *_bindings(options, cluster_name, ETCD_BACKUP_NAME, ETCD_BACKUP_NAME, ETCD_BACKUP_COMPONENT),
    ]


def _bindings(
    options: InstallOptions, cluster_role: str, role: str, account: str, component: str
) -> list[JsonObject]:
    subject = {"kind": "ServiceAccount", "name": account, "namespace": options.namespace}
    return [
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(options, cluster_role, component, namespaced=False),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
            "subjects": [subject],
        },
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": _meta(options, role, component, namespaced=True),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role},
            "subjects": [subject],
        },
    ]


def _field_env(name: str, path: str) -> JsonObject:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _credentials_volume() -> JsonObject:
    # Optional: the server also starts before the administrator creates the
    # Secret (the seed creates it after installing the operator).
    return {
        "name": CREDENTIALS_SECRET,
        "secret": {"secretName": CREDENTIALS_SECRET, "defaultMode": 0o444, "optional": True},
    }


def _common_mounts() -> list[JsonObject]:
    return [
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        {"name": CREDENTIALS_SECRET, "mountPath": CREDENTIALS_DIR, "readOnly": True},
    ]


def _metrics_port() -> list[JsonObject]:
    return [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}]


def _workload_meta(options: InstallOptions, name: str, component: str) -> JsonObject:
    meta = _meta(options, name, component, namespaced=True)
    meta["labels"]["component"] = "velero"
    return meta


def _deployment(options: InstallOptions) -> JsonObject:
    selector = {NAME_LABEL: SERVER_NAME, COMPONENT_LABEL: "server"}
    # "component: velero" and "deploy: velero" are what Velero and OADP users select pods by.
    pod_labels = {**_labels(options, "server"), "component": "velero", "deploy": "velero"}
    container = {
        "name": SERVER_NAME,
        "image": options.image,
        "command": ["strongroom"],
        "args": [
            "server",
            f"--namespace={options.namespace}",
            f"--metrics-address=:{METRICS_PORT}",
            f"--log-level={options.log_level}",
            # Restored pods wait for their volumes in an init container of this same image.
            f"--restore-helper-image={options.image}",
        ],
        "env": [
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            {"name": "STRONGROOM_SCRATCH_DIR", "value": SCRATCH_DIR},
            # The root filesystem is read-only; temporary files go to the scratch volume.
            {"name": "TMPDIR", "value": SCRATCH_DIR},
            *options.proxy.env(),
        ],
        "ports": _metrics_port(),
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": options.server_resources.render(),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": _common_mounts(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _workload_meta(options, SERVER_NAME, "server"),
        "spec": {
            "replicas": options.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "serviceAccountName": SERVER_NAME,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "scratch", "emptyDir": {}}, _credentials_volume()],
                },
            },
        },
    }


def _daemonset(options: InstallOptions) -> JsonObject:
    selector = {NAME_LABEL: SERVER_NAME, COMPONENT_LABEL: NODE_AGENT_NAME}
    pod_labels = {**_labels(options, NODE_AGENT_NAME), "component": "velero", "name": NODE_AGENT_NAME}
    host_pods = f"{options.kubelet_root_dir.rstrip('/')}/pods"
    container = {
        "name": NODE_AGENT_NAME,
        "image": options.image,
        "command": ["strongroom"],
        "args": [
            "node-agent",
            "--node=$(NODE_NAME)",
            f"--host-pods-root={HOST_PODS_MOUNT}",
            f"--namespace={options.namespace}",
            f"--log-level={options.log_level}",
        ],
        "env": [
            _field_env("NODE_NAME", "spec.nodeName"),
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            {"name": "STRONGROOM_SCRATCH_DIR", "value": SCRATCH_DIR},
            {"name": "TMPDIR", "value": SCRATCH_DIR},
            *options.proxy.env(),
        ],
        "ports": _metrics_port(),
        "resources": options.node_agent_resources.render(),
        "securityContext": {"privileged": options.privileged_node_agent},
        "volumeMounts": [
            # HostToContainer: volumes the kubelet mounts after the agent started are seen too.
            {"name": "host-pods", "mountPath": HOST_PODS_MOUNT, "mountPropagation": "HostToContainer"},
            *_common_mounts(),
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _workload_meta(options, NODE_AGENT_NAME, NODE_AGENT_NAME),
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": NODE_AGENT_NAME,
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    # Root reads and writes the files of every pod's volumes, whoever owns them;
                    # supplemental groups reach files on root_squash NFS exports.
                    "securityContext": node_agent_security_context(options.node_agent_supplemental_groups),
                    "containers": [container],
                    "volumes": [
                        {"name": "host-pods", "hostPath": {"path": host_pods}},
                        {"name": "scratch", "emptyDir": {}},
                        _credentials_volume(),
                    ],
                },
            },
        },
    }


def _etcd_backup_command(options: InstallOptions) -> list[str]:
    command = [
        "strongroom",
        "etcd",
        "snapshot",
        "save",
        "--storage-location",
        options.etcd_backup_location,
        "--namespace",
        options.namespace,
        "--host-root",
        ETCD_HOST_ROOT,
    ]
    for flag, keep in (
        ("--keep-last", options.etcd_backup_keep_last),
        ("--keep-daily", options.etcd_backup_keep_daily),
        ("--keep-weekly", options.etcd_backup_keep_weekly),
    ):
        if keep:
            command += [flag, str(keep)]
    if options.etcd_backup_verify:
        command += ["--verify", "--scratch-dir", SCRATCH_DIR]
    return command


def _etcd_backup_cronjob(options: InstallOptions) -> JsonObject:
    assert options.etcd_backup_schedule is not None
    labels = _labels(options, ETCD_BACKUP_COMPONENT)
    host_config = f"{ETCD_HOST_ROOT}{ETCD_HOST_CONFIG_DIR}"
    container = {
        "name": "etcd-backup",
        "image": options.image,
        "command": _etcd_backup_command(options),
        "env": [
            _field_env("NODE_NAME", "spec.nodeName"),
            _field_env("POD_NAME", "metadata.name"),
            _field_env("POD_NAMESPACE", "metadata.namespace"),
            {"name": "STRONGROOM_SCRATCH_DIR", "value": SCRATCH_DIR},
            {"name": "TMPDIR", "value": SCRATCH_DIR},
            *options.proxy.env(),
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        # etcd's client certificates under /etc/kubernetes are root's (mode 0600), and
        # OpenShift admits a hostPath volume only in a privileged container.
        "securityContext": {"privileged": True, "runAsUser": 0},
        "volumeMounts": [
            {"name": "etc-kubernetes", "mountPath": host_config, "readOnly": True},
            {"name": "scratch", "mountPath": SCRATCH_DIR},
        ],
    }
    pod_spec = {
        "serviceAccountName": ETCD_BACKUP_NAME,
        "restartPolicy": "Never",
        # etcd listens on the control-plane node's own addresses (often 127.0.0.1 only).
        "hostNetwork": True,
        # With the host's network, cluster DNS (an in-cluster object store) only with this policy.
        "dnsPolicy": "ClusterFirstWithHostNet",
        "priorityClassName": "system-cluster-critical",
        "affinity": {
            "nodeAffinity": {
                # Terms are ORed: a node with either label qualifies.
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": label, "operator": "Exists"}]}
                        for label in CONTROL_PLANE_LABELS
                    ]
                }
            }
        },
        "tolerations": [
            {"key": label, "operator": "Exists", "effect": "NoSchedule"} for label in CONTROL_PLANE_LABELS
        ],
        "containers": [container],
        "volumes": [
            {"name": "etc-kubernetes", "hostPath": {"path": ETCD_HOST_CONFIG_DIR, "type": "Directory"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(options, ETCD_BACKUP_NAME, ETCD_BACKUP_COMPONENT, namespaced=True),
        "spec": {
            "schedule": " ".join(options.etcd_backup_schedule.split()),
            # A snapshot still running (a large database, a slow store) is not joined by another.
            "concurrencyPolicy": "Forbid",
            # A run missed by more than an hour (controller down) is skipped, not made up for.
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "backoffLimit": 1,
                    "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
                },
            },
        },
    }


def node_agent_security_context(supplemental_groups: tuple[int, ...] | list[int] = ()) -> JsonObject:
    """The node agent pods' security context (also what a DataProtectionApplication's restic settings change)."""
    context: JsonObject = {"runAsUser": 0}
    if supplemental_groups:
        context["supplementalGroups"] = list(supplemental_groups)
    return context


def render(options: InstallOptions) -> list[JsonObject]:
    """Every resource of an installation, in the order to apply them.

    CRDs, Namespace, ServiceAccounts, RBAC, Deployment, DaemonSet (the
    node agent's workload, account and roles only with ``use_node_agent``),
    CronJob (the etcd backup's, with its account and roles, only with
    ``etcd_backup_schedule``).
    """
    definitions = _definitions()
    groups = custom_resource_groups(definitions)
    accounts = [_service_account(options, SERVER_NAME, "server")]
    rbac = _server_rbac(options, groups)
    workloads = [_deployment(options)]
    if options.use_node_agent:
        accounts.append(_service_account(options, NODE_AGENT_NAME, NODE_AGENT_NAME))
        rbac += _node_agent_rbac(options, groups)
        workloads.append(_daemonset(options))
    if options.etcd_backup:
        accounts.append(_service_account(options, ETCD_BACKUP_NAME, ETCD_BACKUP_COMPONENT))
        rbac += _etcd_backup_rbac(options)
        workloads.append(_etcd_backup_cronjob(options))
    # Roles before bindings, as kubectl users order them (a binding may precede its role, but reads oddly).
    rbac.sort(key=lambda obj: ("Binding" in obj["kind"], obj["kind"]))
    return [*_crds(options, definitions), _namespace(options), *accounts, *rbac, *workloads]


def inventory(namespace: str) -> list[JsonObject]:
    """Every resource an installation in ``namespace`` can have, whatever it was installed with.

    What `strongroom uninstall` looks for: every optional component is
    rendered, because the options of the original install are not known;
    objects that were never created are simply not found.
    """
    return render(InstallOptions(namespace=namespace, use_node_agent=True, etcd_backup_schedule="@daily"))
