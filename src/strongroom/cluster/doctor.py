"""``strongroom doctor``: the troubleshooting chapter of the guide, as checks over what a cluster holds.

Each known problem of the chapter (invalid top-level directories, a malformed
credentials file, an Azure or GCS location file-system backup cannot use, a
snapshot location in another region than the volumes, a
Backup stuck InProgress, a restic repository whose bucket was emptied,
permission denied on root_squash NFS volumes, a Restore PartiallyFailed by
DeploymentConfigs) is one pure function here: plain dicts and strings in, a
list of findings out, each problem with what was found and the fix the guide
gives. The command line gathers the data (it may reach stores and etcd; this
module must not) and renders the findings.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from strongroom.model.proxy import ProxySettings

__all__ = [
    "Finding",
    "Status",
    "cluster_proxy",
    "deploymentconfig_restores",
    "etcd_members",
    "invalid_directories",
    "malformed_credentials",
    "missing_repositories",
    "nfs_permission_denied",
    "region_mismatch",
    "restic_unreachable",
    "skipped",
    "stuck_runs",
]

REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
_DC_WORDS = ("deploymentconfig", "replicationcontroller")


class Status(StrEnum):
    ok = "OK"
    problem = "PROBLEM"
    skipped = "SKIPPED"


@dataclass(frozen=True)
class Finding:
    """One check's verdict about one subject (a location, a Backup, ...), with the guide's fix."""

    check: str
    status: Status
    subject: str = ""
    found: str = ""
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": str(self.status),
            "subject": self.subject,
            "found": self.found,
            "fix": self.fix,
        }


def skipped(check: str, why: str) -> list[Finding]:
    return [Finding(check, Status.skipped, found=why)]


def _ok(check: str, found: str) -> list[Finding]:
    return [Finding(check, Status.ok, found=found)]


def _per_location(check: str, probes: Mapping[str, str | None], fix: str, fine: str) -> list[Finding]:
    """A problem for each location whose probe found one (its message), else one OK."""
    problems = [
        Finding(check, Status.problem, f"BackupStorageLocation/{name}", message, fix)
        for name, message in sorted(probes.items())
        if message
    ]
    return problems or _ok(check, fine)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "?")


INVALID_DIRECTORIES = "invalid-top-level-directories"
_FIX_PREFIX = (
    "the bucket holds data that is not Velero's: give the location a prefix of its own "
    "(spec.backupLocations.velero.objectStorage.prefix of the DataProtectionApplication, "
    "or spec.objectStorage.prefix of the BackupStorageLocation)"
)


def invalid_directories(probes: Mapping[str, str | None]) -> list[Finding]:
    """``probes``: location name -> the top-level check's error message, None when the store is valid."""
    if not probes:
        return skipped(INVALID_DIRECTORIES, "no BackupStorageLocation could be opened")
    return _per_location(
        INVALID_DIRECTORIES, probes, _FIX_PREFIX, f"{len(probes)} location(s) hold only Velero's directories"
    )


MALFORMED_CREDENTIALS = "malformed-credentials"
_FIX_CREDENTIALS = {
    "aws": "recreate the Secret from a credentials-velero file formatted like: "
    "[default] / aws_access_key_id=<AWS_ACCESS_KEY_ID> / aws_secret_access_key=<AWS_SECRET_ACCESS_KEY> "
    "(one setting a line)",
    "azure": "recreate the Secret (cloud-credentials-azure, key cloud) from a credentials-velero file of "
    "KEY=value lines: AZURE_SUBSCRIPTION_ID, AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, "
    "AZURE_RESOURCE_GROUP, AZURE_STORAGE_ACCOUNT_ACCESS_KEY (named by config.storageAccountKeyEnvVar), "
    "AZURE_CLOUD_NAME",
    "gcp": "recreate the Secret (cloud-credentials-gcp, key cloud) from the service account's JSON key "
    "(gcloud iam service-accounts keys create credentials-velero --iam-account <SERVICE_ACCOUNT_EMAIL>)",
}


def malformed_credentials(
    probes: Mapping[str, str | None], providers: Mapping[str, str] | None = None
) -> list[Finding]:
    """``probes``: location name -> why its credentials did not parse (never their values), None when fine;
    ``providers``: each location's provider kind (aws, azure, gcp), which decides the file format shown."""
    if not probes:
        return skipped(MALFORMED_CREDENTIALS, "no BackupStorageLocation uses a credentials Secret")
    kinds = providers or {}
    problems = [
        Finding(
            MALFORMED_CREDENTIALS,
            Status.problem,
            f"BackupStorageLocation/{name}",
            message,
            _FIX_CREDENTIALS.get(kinds.get(name, "aws"), _FIX_CREDENTIALS["aws"]),
        )
        for name, message in sorted(probes.items())
        if message
    ]
    return problems or _ok(MALFORMED_CREDENTIALS, f"the credentials of {len(probes)} location(s) parse")


RESTIC_UNREACHABLE = "fs-backup-location"


def restic_unreachable(probes: Mapping[str, tuple[str, str] | None]) -> list[Finding]:
    """``probes``: Azure and GCS location name -> (why restic cannot reach it, what to change), None when it can."""
    if not probes:
        return skipped(RESTIC_UNREACHABLE, "no Azure or GCS BackupStorageLocation")
    problems = [
        Finding(RESTIC_UNREACHABLE, Status.problem, f"BackupStorageLocation/{name}", *probe)
        for name, probe in sorted(probes.items())
        if probe
    ]
    return problems or _ok(RESTIC_UNREACHABLE, f"restic reaches the {len(probes)} Azure or GCS location(s)")


REGION_MISMATCH = "snapshot-location-region"


def pv_region(pv: Mapping[str, Any]) -> str | None:
    labels = (pv.get("metadata") or {}).get("labels") or {}
    for label in REGION_LABELS:
        if labels.get(label):
            return str(labels[label])
    return None


def region_mismatch(
    snapshot_locations: Sequence[Mapping[str, Any]], pvs: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """A VolumeSnapshotLocation whose ``config.region`` is not a region of the PVs (InvalidVolume.NotFound)."""
    with_region = [
        (loc, str(((loc.get("spec") or {}).get("config") or {}).get("region") or ""))
        for loc in snapshot_locations
    ]
    with_region = [(loc, region) for loc, region in with_region if region]
    if not with_region:
        return skipped(REGION_MISMATCH, "no VolumeSnapshotLocation names a region")
    pv_regions: dict[str, list[str]] = {}
    for pv in pvs:
        region = pv_region(pv)
        if region:
            pv_regions.setdefault(region, []).append(_name(pv))
    if not pv_regions:
        return skipped(REGION_MISMATCH, "no PersistentVolume carries a region label")
    problems: list[Finding] = []
    for loc, region in with_region:
        others = {r: names for r, names in pv_regions.items() if r != region}
        if not others:
            continue
        listed = "; ".join(
            f"{r}: {', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''}"
            for r, names in sorted(others.items())
        )
        problems.append(
            Finding(
                REGION_MISMATCH,
                Status.problem,
                f"VolumeSnapshotLocation/{_name(loc)}",
                f"config.region is {region}, but PersistentVolumes are in another region ({listed}); "
                "their snapshots fail with InvalidVolume.NotFound",
                "set spec.snapshotLocations.velero.config.region of the DataProtectionApplication to the "
                "region of the PVs, then create a new Backup",
            )
        )
    return problems or _ok(REGION_MISMATCH, "the snapshot locations are in the region of the PVs")


STUCK = "stuck-in-progress"


def _start(obj: Mapping[str, Any]) -> datetime | None:
    text = (obj.get("status") or {}).get("startTimestamp") or (obj.get("metadata") or {}).get(
        "creationTimestamp"
    )
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def stuck_runs(
    runs: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    now: datetime,
    stuck_after: timedelta,
    server_running: bool,
    namespace: str,
) -> list[Finding]:
    """Backups/Restores (kind, object) InProgress for longer than ``stuck_after``, or with no server to finish them."""
    problems: list[Finding] = []
    count = 0
    for kind, obj in runs:
        if (obj.get("status") or {}).get("phase") != "InProgress":
            continue
        count += 1
        started = _start(obj)
        age = now - started if started else None
        too_long = age is not None and age > stuck_after
        if not (too_long or not server_running):
            continue
        name = _name(obj)
        why = []
        if too_long and age is not None:
            why.append(f"InProgress for {_duration(age)} (more than {_duration(stuck_after)})")
        if not server_running:
            why.append(f"no strongroom/velero server pod is Running in {namespace}")
        noun = kind.lower()
        problems.append(
            Finding(
                STUCK,
                Status.problem,
                f"{kind}/{name}",
                "; ".join(why) + ": an interrupted run cannot be resumed",
                f"look at it (strongroom {noun} describe {name}), delete it (oc delete {noun} {name} -n {namespace}; "
                f"the location needs no cleanup, an InProgress {noun} uploaded nothing) and create a new {kind}",
            )
        )
    return problems or _ok(STUCK, f"{count} run(s) InProgress, none stuck")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


MISSING_REPOSITORY = "restic-repository-missing"


def missing_repositories(
    repositories: Sequence[Mapping[str, Any]], config_present: Mapping[str, bool | None]
) -> list[Finding]:
    """Ready BackupRepositories whose ``restic/<ns>/config`` is gone; ``config_present``: name -> found (None: unknown)."""
    ready = [r for r in repositories if (r.get("status") or {}).get("phase") == "Ready"]
    if not ready:
        return skipped(MISSING_REPOSITORY, "no BackupRepository is Ready")
    problems: list[Finding] = []
    checked = 0
    for repo in ready:
        name = _name(repo)
        present = config_present.get(name)
        if present is None:
            continue
        checked += 1
        if present:
            continue
        spec = repo.get("spec") or {}
        namespace = spec.get("volumeNamespace", "?")
        location = spec.get("backupStorageLocation", "?")
        problems.append(
            Finding(
                MISSING_REPOSITORY,
                Status.problem,
                f"BackupRepository/{name}",
                f"Ready, but restic/{namespace}/config is gone from location {location} "
                "(was the bucket emptied?): file-system backups of the namespace will fail",
                f"delete the BackupRepository (oc delete backuprepository {name}); the next file-system backup "
                "initializes a new repository. Backups whose volume data was in the emptied bucket cannot "
                "restore it: take new backups",
            )
        )
    if not checked:
        return skipped(MISSING_REPOSITORY, "the repositories' locations could not be read")
    return problems or _ok(MISSING_REPOSITORY, f"{checked} Ready repository(ies) found in their buckets")


NFS_PERMISSION = "restic-permission-denied"


def nfs_permission_denied(items: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Finding]:
    """PodVolumeBackups/Restores (kind, object) Failed with "permission denied": root_squash NFS."""
    problems: list[Finding] = []
    for kind, obj in items:
        status = obj.get("status") or {}
        message = str(status.get("message") or "")
        if status.get("phase") != "Failed" or "permission denied" not in message.lower():
            continue
        spec = obj.get("spec") or {}
        pod = spec.get("pod") or {}
        where = f" (pod {pod.get('namespace', '?')}/{pod.get('name', '?')}, volume {spec.get('volume', '?')})"
        problems.append(
            Finding(
                NFS_PERMISSION,
                Status.problem,
                f"{kind}/{_name(obj)}",
                f"Failed: {message}{where}: on an NFS volume with root_squash restic runs as nfsnobody",
                "create a supplemental group for restic on the NFS volume, set the setgid bit on its directories, "
                "add the group id to spec.configuration.restic.supplementalGroups of the DataProtectionApplication "
                "(or --node-agent-supplemental-groups of strongroom install) and wait for the node agent pods to restart",
            )
        )
    return problems or _ok(NFS_PERMISSION, "no pod volume backup or restore failed with permission denied")


DEPLOYMENTCONFIG_RESTORE = "restore-deploymentconfigs"


def deploymentconfig_restores(
    restores: Sequence[Mapping[str, Any]], messages: Mapping[str, Sequence[str] | None], *, namespace: str
) -> list[Finding]:
    """PartiallyFailed/Failed Restores whose errors or warnings name DeploymentConfigs or ReplicationControllers.

    ``messages``: restore name -> its results' messages (None when they could not be read).
    """
    failed = [r for r in restores if (r.get("status") or {}).get("phase") in ("PartiallyFailed", "Failed")]
    if not failed:
        return _ok(DEPLOYMENTCONFIG_RESTORE, "no Restore is PartiallyFailed or Failed")
    problems: list[Finding] = []
    for restore in failed:
        name = _name(restore)
        lines = messages.get(name) or []
        named = [line for line in lines if any(word in line.lower().replace(" ", "") for word in _DC_WORDS)]
        if not named:
            continue
        spec = restore.get("spec") or {}
        backup = spec.get("backupName") or "<backup>"
        namespaces = ",".join(spec.get("includedNamespaces") or []) or "<namespace>"
        problems.append(
            Finding(
                DEPLOYMENTCONFIG_RESTORE,
                Status.problem,
                f"Restore/{name}",
                f"{restore.get('status', {}).get('phase')}: {named[0]}"
                + (f" (and {len(named) - 1} more)" if len(named) > 1 else "")
                + ": DeploymentConfigs redeployed the restored pods",
                "restore in two steps: first without them: strongroom restore create --from-backup "
                f"{backup} -n {namespace} --include-namespaces {namespaces} --exclude-resources "
                "replicationcontroller,deploymentconfig,templateinstances.template.openshift.io "
                "--restore-volumes=true; when it is Completed, restore them: strongroom restore create "
                f"--from-backup {backup} -n {namespace} --include-namespaces {namespaces} "
                "--include-resources replicationcontroller,deploymentconfig --restore-volumes=true",
            )
        )
    return problems or _ok(
        DEPLOYMENTCONFIG_RESTORE, f"{len(failed)} failed Restore(s), none because of DeploymentConfigs"
    )


ETCD_MEMBERS = "etcd-members"


def etcd_members(members: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """``members``: name, healthy, error and explanation of each etcd member (from a survey)."""
    problems = [
        Finding(
            ETCD_MEMBERS,
            Status.problem,
            f"etcd member {m.get('name') or '(not started)'}",
            "unhealthy"
            + (f": {m['error']}" if m.get("error") else "")
            + ("; " + "; ".join(m.get("explanation") or []) if m.get("explanation") else ""),
            "follow the guide's replacement of an unhealthy etcd member: strongroom etcd members replace",
        )
        for m in members
        if not m.get("healthy")
    ]
    return problems or _ok(ETCD_MEMBERS, f"{len(members)} member(s) healthy")


def etcd_operator(
    available: bool | None, message: str, explanations: Mapping[str, Sequence[str]]
) -> list[Finding]:
    """OpenShift's Etcd resource, condition ``EtcdMembersAvailable``: ``explanations`` holds each member
    its message names as unhealthy, with the seed's reasons."""
    if available is None:
        return skipped(ETCD_MEMBERS, message)
    if available:
        return _ok(ETCD_MEMBERS, f"EtcdMembersAvailable: {message}")
    if not explanations:
        return [
            Finding(
                ETCD_MEMBERS,
                Status.problem,
                "Etcd cluster",
                f"EtcdMembersAvailable is not True: {message}",
                "find the unhealthy member with strongroom etcd members health, then replace it: "
                "strongroom etcd members replace",
            )
        ]
    return etcd_members(
        [
            {"name": name, "healthy": False, "error": message, "explanation": list(reasons)}
            for name, reasons in explanations.items()
        ]
    )


CLUSTER_PROXY = "cluster-proxy"
_FIX_REINSTALL = (
    "run strongroom install again: it exports the cluster's Proxy to the server, node agents and "
    "etcd backup (or set HTTP_PROXY, HTTPS_PROXY and NO_PROXY on them as the Proxy's status has them)"
)
_IN_CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local")


def cluster_proxy(
    cluster: ProxySettings | None,
    server: ProxySettings | None,
    endpoints: Mapping[str, str],
    *,
    deployment: str = "strongroom",
) -> list[Finding]:
    """The seed's "check whether a cluster-wide proxy is enabled", judged against what strongroom runs with.

    ``cluster``: OpenShift's Proxy (None where there is none); ``server``: the proxy
    environment of the server Deployment ``deployment`` (None when it is not found); ``endpoints``:
    each location's custom endpoint (``config.s3Url``)."""
    problems: list[Finding] = []
    enabled = cluster is not None and cluster.enabled
    if enabled and server is not None and server != cluster:
        assert cluster is not None
        found = (
            f"the cluster's traffic goes through a proxy ({cluster.describe()}) but the server runs "
            + ("without one: locations outside the cluster are unreachable" if not server.enabled
               else f"with other settings ({server.describe()}): the Proxy changed since the install")
        )  # fmt: skip
        problems.append(
            Finding(CLUSTER_PROXY, Status.problem, f"Deployment/{deployment}", found, _FIX_REINSTALL)
        )
    effective = server if server is not None else cluster
    if effective is not None and effective.enabled:
        for name, url in sorted(endpoints.items()):
            host = urllib.parse.urlsplit(url).hostname or ""
            if host.endswith(_IN_CLUSTER_SUFFIXES) and effective.proxy_for(url) is not None:
                problems.append(
                    Finding(
                        CLUSTER_PROXY,
                        Status.problem,
                        f"BackupStorageLocation/{name}",
                        f"its endpoint {host} is inside the cluster but NO_PROXY does not exempt it: "
                        "requests go to the proxy, which cannot reach it",
                        f"add {host} (or .svc) to the Proxy's spec.noProxy, then run strongroom install again",
                    )
                )
    if problems:
        return problems
    if not enabled:
        return _ok(CLUSTER_PROXY, "no cluster-wide proxy is set")
    assert cluster is not None
    return _ok(CLUSTER_PROXY, f"the server uses the cluster-wide proxy ({cluster.describe()})")
