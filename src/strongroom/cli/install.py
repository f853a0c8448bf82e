"""`strongroom install` and `strongroom uninstall`: put the server into a cluster and take it out again.

Every flag is checked (``InstallOptions``) before the kubeconfig is read, so
a typo costs no request; ``--dry-run`` prints the manifests without touching
a cluster at all. The rendering and the apply/remove logic live in
``strongroom.deploy``; this module translates flags and prints one line per
object.
"""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from strongroom.cli.common import ContextOption, KubeconfigOption, confirm, kube_client, run
from strongroom.deploy import DEFAULT_IMAGE, DEFAULT_NAMESPACE, InstallOptions, Resources, render
from strongroom.deploy.manifests import (
    DEFAULT_SERVER_CPU_LIMIT,
    DEFAULT_SERVER_CPU_REQUEST,
    DEFAULT_SERVER_MEMORY_LIMIT,
    DEFAULT_SERVER_MEMORY_REQUEST,
    ETCD_BACKUP_NAME,
    SERVER_NAME,
    JsonObject,
    inventory,
)
from strongroom.errors import UsageError
from strongroom.model.duration import parse_duration
from strongroom.model.proxy import ProxySettings

if TYPE_CHECKING:
    from strongroom.deploy.installer import Change
    from strongroom.kube import KubeClient

__all__ = ["install", "uninstall"]


class ManifestFormat(StrEnum):
    yaml = "yaml"
    json = "json"


NamespaceFlag = Annotated[
    str,
    typer.Option(
        "--namespace", "-n", help="The namespace of the server and its resources (OADP's is openshift-adp)."
    ),
]
WaitTimeout = Annotated[
    str,
    typer.Option(
        "--timeout",
        help="How long to wait for CRDs, --wait and terminating objects: a duration such as 90s or 5m.",
    ),
]


def _seconds(value: str) -> float:
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text).total_seconds()
        except UsageError as exc:
            raise UsageError(
                f"invalid --timeout {value!r}: {exc.message}", hint="e.g. 90s, 5m or 1h"
            ) from None
    if seconds <= 0:
        raise UsageError(f"invalid --timeout {value!r}: must be positive", hint="e.g. 90s, 5m or 1h")
    return seconds


def _print_manifests(manifests: list[JsonObject], output: ManifestFormat) -> None:
    if output is ManifestFormat.json:
        document = {"apiVersion": "v1", "kind": "List", "items": manifests}
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        typer.echo(
            yaml.safe_dump_all(manifests, sort_keys=False, allow_unicode=True, explicit_start=True).rstrip()
        )


async def _cluster_proxy(kube: KubeClient) -> ProxySettings | None:
    """OpenShift's cluster-wide Proxy, when the cluster serves one."""
    res = (await kube.discover()).served("config.openshift.io", "v1", "proxies")
    proxy = await kube.get(res, "cluster") if res is not None else None
    return ProxySettings.from_openshift(proxy) if proxy is not None else None


def _etcd_backup_options(
    schedule: str | None,
    location: str | None,
    keep_last: int | None,
    keep_daily: int | None,
    keep_weekly: int | None,
    verify: bool | None,
) -> dict[str, Any]:
    """The InstallOptions fields of the etcd backup; its other flags are refused without a schedule."""
    given = {
        "--etcd-backup-location": location,
        "--etcd-backup-keep-last": keep_last,
        "--etcd-backup-keep-daily": keep_daily,
        "--etcd-backup-keep-weekly": keep_weekly,
        "--etcd-backup-verify/--no-etcd-backup-verify": verify,
    }
    if schedule is None:
        stray = [flag for flag, value in given.items() if value is not None]
        if stray:
            raise UsageError(
                f"{stray[0]} needs --etcd-backup-schedule",
                hint="add --etcd-backup-schedule CRON (e.g. '0 */6 * * *') to install the etcd backup",
            )
        return {}
    options: dict[str, Any] = {"etcd_backup_schedule": schedule}
    for field, value in (
        ("etcd_backup_location", location),
        ("etcd_backup_keep_last", keep_last),
        ("etcd_backup_keep_daily", keep_daily),
        ("etcd_backup_keep_weekly", keep_weekly),
        ("etcd_backup_verify", verify),
    ):
        if value is not None:
            options[field] = value
    return options


def _echo(change: Change) -> None:
    typer.echo(str(change))


def install(
    namespace: NamespaceFlag = DEFAULT_NAMESPACE,
    image: Annotated[
        str, typer.Option("--image", help="The container image of the server and node agent.")
    ] = (DEFAULT_IMAGE),
    replicas: Annotated[
        int,
        typer.Option(
            "--replicas",
            help="Server replicas; more than one is safe (one leader, elected over a Lease, does the work).",
        ),
    ] = 1,
    log_level: Annotated[
        str, typer.Option("--log-level", help="trace, debug, info, warning, error, fatal or panic.")
    ] = "info",
    use_node_agent: Annotated[
        bool,
        typer.Option(
            "--use-node-agent/--no-use-node-agent",
            help="Deploy the node-agent DaemonSet that backs up pod volumes (file-system backup with restic).",
        ),
    ] = False,
    node_agent_supplemental_groups: Annotated[
        list[int] | None,
        typer.Option(
            "--node-agent-supplemental-groups",
            help="Group IDs the node agent runs with, to read volumes on root_squash NFS exports (repeatable).",
        ),
    ] = None,
    privileged_node_agent: Annotated[
        bool,
        typer.Option(
            "--privileged-node-agent", help="Run the node agent privileged (needed on some storage systems)."
        ),
    ] = False,
    kubelet_root_dir: Annotated[
        str, typer.Option("--kubelet-root-dir", help="The kubelet's root directory on the nodes.")
    ] = "/var/lib/kubelet",
    server_cpu_request: Annotated[str, typer.Option("--server-cpu-request")] = DEFAULT_SERVER_CPU_REQUEST,
    server_memory_request: Annotated[
        str, typer.Option("--server-memory-request")
    ] = DEFAULT_SERVER_MEMORY_REQUEST,
    server_cpu_limit: Annotated[str, typer.Option("--server-cpu-limit")] = DEFAULT_SERVER_CPU_LIMIT,
    server_memory_limit: Annotated[str, typer.Option("--server-memory-limit")] = DEFAULT_SERVER_MEMORY_LIMIT,
    node_agent_cpu_request: Annotated[
        str, typer.Option("--node-agent-cpu-request", help="Empty (the default) sets none.")
    ] = "",
    node_agent_memory_request: Annotated[str, typer.Option("--node-agent-memory-request")] = "",
    node_agent_cpu_limit: Annotated[str, typer.Option("--node-agent-cpu-limit")] = "",
    node_agent_memory_limit: Annotated[str, typer.Option("--node-agent-memory-limit")] = "",
    etcd_backup_schedule: Annotated[
        str | None,
        typer.Option(
            "--etcd-backup-schedule",
            help="Save an etcd snapshot on this cron schedule (5 fields, e.g. '0 */6 * * *') from a "
            "CronJob on a control-plane node. Without it no etcd backup is installed.",
        ),
    ] = None,
    etcd_backup_location: Annotated[
        str | None,
        typer.Option(
            "--etcd-backup-location",
            help="The BackupStorageLocation (in --namespace) the snapshots go to. Default: default.",
        ),
    ] = None,
    etcd_backup_keep_last: Annotated[
        int | None,
        typer.Option(
            "--etcd-backup-keep-last", help="After each snapshot keep the N newest (0: no rule). Default: 7."
        ),
    ] = None,
    etcd_backup_keep_daily: Annotated[
        int | None,
        typer.Option("--etcd-backup-keep-daily", help="Also keep one a day for N days. Default: 0."),
    ] = None,
    etcd_backup_keep_weekly: Annotated[
        int | None,
        typer.Option("--etcd-backup-keep-weekly", help="Also keep one a week for N weeks. Default: 0."),
    ] = None,
    etcd_backup_verify: Annotated[
        bool | None,
        typer.Option(
            "--etcd-backup-verify/--no-etcd-backup-verify",
            help="Verify each snapshot after saving it (a trial restore in scratch space). Default: verify.",
        ),
    ] = None,
    http_proxy: Annotated[
        str | None, typer.Option("--http-proxy", help="Proxy for http:// requests, set in every container.")
    ] = None,
    https_proxy: Annotated[
        str | None, typer.Option("--https-proxy", help="Proxy for https:// requests, set in every container.")
    ] = None,
    no_proxy: Annotated[
        str | None,
        typer.Option("--no-proxy", help="Hosts, domains and CIDRs reached directly (comma separated)."),
    ] = None,
    cluster_proxy: Annotated[
        bool,
        typer.Option(
            "--cluster-proxy/--no-cluster-proxy",
            help="Without --http-proxy/--https-proxy, use the cluster-wide Proxy (config.openshift.io) "
            "when the cluster has one.",
        ),
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the manifests instead of applying them; no cluster is contacted."
        ),
    ] = False,
    output: Annotated[
        ManifestFormat | None,
        typer.Option(
            "--output", "-o", help="With --dry-run: yaml (documents separated by ---) or json (a v1 List)."
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Wait until the server Deployment is available. Needs nodes that run pods: "
            "the sandbox has none, so there it always times out.",
        ),
    ] = False,
    timeout: WaitTimeout = "5m",
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Install strongroom's CRDs, permissions, server Deployment, node-agent DaemonSet and etcd backup CronJob.

    Applying is idempotent: each object is created, updated (only the fields
    strongroom renders; labels and fields others add are kept) or left
    unchanged, and one line per object says which. Running it again after
    an upgrade updates the image and the version labels.
    """
    options = InstallOptions(
        namespace=namespace,
        image=image,
        replicas=replicas,
        log_level=log_level,
        use_node_agent=use_node_agent,
        privileged_node_agent=privileged_node_agent,
        node_agent_supplemental_groups=tuple(node_agent_supplemental_groups or ()),
        kubelet_root_dir=kubelet_root_dir,
        server_resources=Resources(
            server_cpu_request, server_memory_request, server_cpu_limit, server_memory_limit
        ),
        node_agent_resources=Resources(
            node_agent_cpu_request, node_agent_memory_request, node_agent_cpu_limit, node_agent_memory_limit
        ),
        **_etcd_backup_options(
            etcd_backup_schedule,
            etcd_backup_location,
            etcd_backup_keep_last,
            etcd_backup_keep_daily,
            etcd_backup_keep_weekly,
            etcd_backup_verify,
        ),
        proxy=ProxySettings(http_proxy or "", https_proxy or "", no_proxy or ""),
    )
    seconds = _seconds(timeout)
    if output is not None and not dry_run:
        raise UsageError("--output needs --dry-run", hint="add --dry-run to print the manifests")
    if dry_run and wait:
        raise UsageError("--wait cannot be combined with --dry-run", hint="drop one of them")
    manifests = render(options)
    if dry_run:
        _print_manifests(manifests, output or ManifestFormat.yaml)
        return

    async def apply() -> None:
        from strongroom.deploy.installer import Installer

        async with kube_client(kubeconfig, kubecontext) as kube:
            chosen = manifests
            if cluster_proxy and not options.proxy.enabled:
                found = await _cluster_proxy(kube)
                if found is not None and found.enabled:
                    typer.echo(f"Using the cluster-wide proxy: {found.describe()}")
                    chosen = render(dataclasses.replace(options, proxy=found))
            installer = Installer(kube, report=_echo)
            await installer.install(chosen, timeout=seconds)
            if wait:
                typer.echo(f"Waiting for Deployment {options.namespace}/{SERVER_NAME} to be available...")
                await installer.wait_available(options.namespace, SERVER_NAME, timeout=seconds)
                typer.echo(f"Deployment {options.namespace}/{SERVER_NAME} is available.")

    run(apply())
    typer.echo(
        f"strongroom is installed in namespace {options.namespace!r}. "
        f"Check the server with: kubectl -n {options.namespace} get deployment {SERVER_NAME}"
    )
    if options.etcd_backup:
        typer.echo(
            f"etcd snapshots are saved on schedule {options.etcd_backup_schedule!r} to "
            f"BackupStorageLocation {options.etcd_backup_location!r}. Check them with: "
            f"kubectl -n {options.namespace} get cronjob {ETCD_BACKUP_NAME}"
        )


def uninstall(
    namespace: NamespaceFlag = DEFAULT_NAMESPACE,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", "--confirm", "--force", help="Do not ask for confirmation.")
    ] = False,
    keep_crds: Annotated[
        bool,
        typer.Option(
            "--keep-crds",
            help="Keep the CustomResourceDefinitions (and so the Backup, Restore, ... resources of other namespaces).",
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the namespace and the CRDs are gone.")
    ] = False,
    timeout: WaitTimeout = "5m",
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Remove strongroom from the cluster; the backups in object storage are kept.

    Deletes the server Deployment, node-agent DaemonSet and etcd backup CronJob, the permissions
    and service accounts, then the namespace (with the Backup, Restore,
    Schedule, BackupStorageLocation ... resources in it), then the CRDs
    unless --keep-crds. Like `velero uninstall`, this removes resources from
    the cluster only: no file in a bucket is deleted (only a
    DeleteBackupRequest, `strongroom backup delete`, deletes a backup's
    files), so a new installation pointed at the same bucket finds every
    backup again. A namespace that strongroom did not create is kept.
    Running it when nothing is installed reports "nothing to remove".
    """
    # Whatever the installation was installed with: every optional component is looked for.
    manifests = inventory(namespace)
    seconds = _seconds(timeout)
    if not yes:
        what = "the CRDs are kept" if keep_crds else "the CRDs and all their resources are deleted"
        confirm(f"Uninstall strongroom from namespace {namespace!r} ({what}; backups in storage are kept)?")

    async def remove() -> list[Change]:
        from strongroom.deploy.installer import Installer

        async with kube_client(kubeconfig, kubecontext) as kube:
            installer = Installer(kube, report=_echo)
            return await installer.uninstall(manifests, keep_crds=keep_crds, wait=wait, timeout=seconds)

    changes = run(remove())
    if not any(change.action == "deleted" for change in changes):
        typer.echo(f"nothing to remove: strongroom is not installed in namespace {namespace!r}")
        return
    typer.echo(
        f"strongroom uninstalled from namespace {namespace!r}; backups in object storage were not touched."
    )
