"""`strongroom server`: the in-cluster server (what the Deployment `strongroom install` creates runs).

Flags follow `velero server` where it has them; durations are Go durations
(`1m`, `720h`). Outside a pod, `--kubeconfig` points it at a cluster, which
is how the tests and the sandbox run it.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import ContextOption, KubeconfigOption, run_until_signalled
from strongroom.errors import UsageError

__all__ = ["server"]

DEFAULT_SERVER_NAMESPACE = "openshift-adp"


def _duration(value: str, flag: str) -> timedelta:
    from strongroom.model.duration import parse_duration

    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"invalid {flag} {value!r}: {exc}") from None
    if parsed < timedelta(0):
        raise UsageError(f"invalid {flag} {value!r}: it must not be negative")
    return parsed


def server(
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="The namespace whose Velero/OADP resources this server processes "
            f"(default: $POD_NAMESPACE, else {DEFAULT_SERVER_NAMESPACE}).",
        ),
    ] = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
    metrics_address: Annotated[
        str, typer.Option("--metrics-address", help="Where /metrics, /healthz and /readyz are served.")
    ] = ":8085",
    log_level: Annotated[
        str, typer.Option("--log-level", help="trace, debug, info, warning, error, fatal or panic.")
    ] = "info",
    log_format: Annotated[str, typer.Option("--log-format", help="json or text.")] = "json",
    default_backup_ttl: Annotated[
        str, typer.Option("--default-backup-ttl", help="TTL of backups that set none.")
    ] = "720h",
    default_location: Annotated[
        str,
        typer.Option(
            "--default-backup-storage-location",
            help="Location of backups that name none, when no location is marked default.",
        ),
    ] = "default",
    default_snapshot_locations: Annotated[
        str,
        typer.Option(
            "--default-volume-snapshot-locations",
            help="The volume snapshot location of each provider that has several, as provider:name,... "
            "(for backups that name none).",
        ),
    ] = "",
    openshift_plugin: Annotated[
        bool,
        typer.Option(
            "--openshift-plugin",
            help="Back up and restore ImageStreams' internal images even without a DataProtectionApplication "
            "listing the openshift plugin.",
        ),
    ] = False,
    validation_frequency: Annotated[
        str,
        typer.Option("--store-validation-frequency", help="How often locations are validated (0 = never)."),
    ] = "1m",
    sync_period: Annotated[
        str,
        typer.Option("--backup-sync-period", help="How often backups are synced from storage (0 = never)."),
    ] = "1m",
    gc_frequency: Annotated[
        str, typer.Option("--garbage-collection-frequency", help="How often expired backups are deleted.")
    ] = "1h",
    default_volumes_to_fs_backup: Annotated[
        bool,
        typer.Option(
            "--default-volumes-to-fs-backup",
            help="Back up pod volumes with the file-system backup by default.",
        ),
    ] = False,
    fs_backup_timeout: Annotated[
        str,
        typer.Option(
            "--fs-backup-timeout",
            help="How long a backup or restore waits for the node agents to copy pod volumes.",
        ),
    ] = "4h",
    restore_helper_image: Annotated[
        str | None,
        typer.Option(
            "--restore-helper-image",
            help="Image of the restore-wait init container added to pods whose volumes are restored "
            "(default: strongroom's image of this version).",
        ),
    ] = None,
    leader_elect: Annotated[
        bool,
        typer.Option(
            "--leader-elect/--no-leader-elect", help="Run controllers only while holding the leader Lease."
        ),
    ] = True,
    lease_duration: Annotated[str, typer.Option("--lease-duration")] = "15s",
    renew_deadline: Annotated[str, typer.Option("--renew-deadline")] = "10s",
    retry_period: Annotated[str, typer.Option("--retry-period")] = "2s",
    scratch_dir: Annotated[
        Path | None,
        typer.Option(
            "--scratch-dir",
            envvar="STRONGROOM_SCRATCH_DIR",
            help="Where backups and restores keep work files (default: the system's temporary directory).",
        ),
    ] = None,
) -> None:
    """Run the server: reconcile Backups, Restores, Schedules, locations and the DataProtectionApplication."""
    from strongroom.controller.context import ServerConfig
    from strongroom.controller.logs import configure_logging, parse_level
    from strongroom.controller.server import ServerOptions, run_server

    parse_level(log_level)
    if log_format not in ("json", "text"):
        raise UsageError(f"invalid --log-format {log_format!r}", hint="use json or text")
    config = ServerConfig(
        namespace=namespace or os.environ.get("POD_NAMESPACE") or DEFAULT_SERVER_NAMESPACE,
        default_backup_ttl=_duration(default_backup_ttl, "--default-backup-ttl"),
        default_location=default_location,
        default_snapshot_locations=_provider_locations(default_snapshot_locations),
        openshift_plugin=openshift_plugin,
        store_validation_frequency=_duration(validation_frequency, "--store-validation-frequency"),
        backup_sync_period=_duration(sync_period, "--backup-sync-period"),
        gc_frequency=_duration(gc_frequency, "--garbage-collection-frequency"),
        default_volumes_to_fs_backup=default_volumes_to_fs_backup,
        fs_backup_timeout=_duration(fs_backup_timeout, "--fs-backup-timeout"),
        workdir=scratch_dir,
    )
    if restore_helper_image:
        config = dataclasses.replace(config, restore_helper_image=restore_helper_image)
    if scratch_dir is not None and not (scratch_dir.is_dir() and os.access(scratch_dir, os.W_OK)):
        raise UsageError(f"--scratch-dir {str(scratch_dir)!r} is not a writable directory")
    if config.fs_backup_timeout <= timedelta(0):
        raise UsageError("--fs-backup-timeout must be positive")
    if config.gc_frequency <= timedelta(0):
        raise UsageError("--garbage-collection-frequency must be positive")
    options = ServerOptions(
        config=config,
        metrics_address=metrics_address,
        leader_elect=leader_elect,
        lease_duration=_duration(lease_duration, "--lease-duration").total_seconds(),
        renew_deadline=_duration(renew_deadline, "--renew-deadline").total_seconds(),
        retry_period=_duration(retry_period, "--retry-period").total_seconds(),
    )
    configure_logging(log_level, "json" if log_format == "json" else "text")

    run_until_signalled(kubeconfig, kubecontext, lambda kube, stop: run_server(kube, options, stop=stop))


def _provider_locations(text: str) -> tuple[tuple[str, str], ...]:
    """``aws:east,gcp:main`` as (provider, location) pairs; a malformed entry is a usage error."""
    pairs: list[tuple[str, str]] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        provider, separator, name = entry.partition(":")
        if not separator or not provider.strip() or not name.strip():
            raise UsageError(
                f"invalid --default-volume-snapshot-locations entry {entry!r}",
                hint="write provider:location pairs separated by commas, e.g. aws:us-east",
            )
        if any(existing == provider.strip() for existing, _ in pairs):
            raise UsageError(f"--default-volume-snapshot-locations names provider {provider.strip()!r} twice")
        pairs.append((provider.strip(), name.strip()))
    return tuple(pairs)
