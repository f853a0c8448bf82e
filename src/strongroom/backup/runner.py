"""Run one backup from start to stored: collect, write, upload, metadata last.

The same runner serves a workstation run and (next) the in-cluster server:
it takes the kube client, the catalog of the target location and a clock,
and returns the Backup object as stored. The tarball and the log are
written to local temporary files while the items stream in (memory stays
bounded), then uploaded with the side files; ``velero-backup.json`` goes
last, so an interrupted or failed upload never leaves a backup that looks
complete.
"""

from __future__ import annotations

import copy
import gzip
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from strongroom.archive import BackupWriter, Results, encode_resource_list, encode_results
from strongroom.archive.runlog import RunLog
from strongroom.archive.sidecars import LogWriter
from strongroom.backup.collector import BackupScope, Collector
from strongroom.backup.images import ImageStreamCopies
from strongroom.backup.volumes import RepositoryEnsurer, VolumeBackups, VolumeReport
from strongroom.errors import StorageError, StrongroomError
from strongroom.hooks import BackupHookRunner, KubeExecutor
from strongroom.images.settings import ImagesSettings
from strongroom.kube import Discovery, KubeClient
from strongroom.model.filters import ResourceCatalog
from strongroom.model.resources import ApiResource
from strongroom.model.velero import Backup, format_timestamp
from strongroom.snapshots.native import PHASE_COMPLETED, NativeLocation
from strongroom.storage.catalog import BackupCatalog, FileDigest

__all__ = ["BackupOutcome", "BackupRunner", "VolumeOptions"]

_log = logging.getLogger(__name__)

FORMAT_VERSION: Final = "1.1.0"
# Velero writes these per-backup files even when there is nothing in them;
# a Velero server reading our backups then finds every file it looks for.
_EMPTY_SIDE_FILES: Final = (
    "backup_volume_snapshots",
    "backup_pod_volume_backups",
    "backup_csi_volume_snapshots",
    "backup_csi_volume_snapshot_contents",
    "backup_csi_volume_snapshot_classes",
    "backup_item_operations",
)


@dataclass(frozen=True)
class VolumeOptions:
    """What the runner needs to back up volume data and run hooks (without it: objects only)."""

    discovery: Discovery
    namespaces: Sequence[str]
    """The namespaces the backup covers, whose pods' volumes may be copied."""
    repositories: RepositoryEnsurer | None = None
    hooks: bool = True
    """Run the backup's hooks (spec.hooks and pod annotations)."""
    default_to_fs_backup: bool = False
    fs_backup_timeout: timedelta | None = None
    snapshot_locations: Sequence[NativeLocation] = ()
    """The VolumeSnapshotLocations chosen for the backup, one per provider, for native snapshots."""
    images: ImagesSettings | None = None
    """With the openshift plugin: where the ImageStreams' internal images go."""


@dataclass
class BackupOutcome:
    """The stored Backup object and what the run found."""

    backup: dict[str, Any]
    results: Results
    stored: bool

    @property
    def phase(self) -> str:
        return str(self.backup.get("status", {}).get("phase", ""))


class BackupRunner:
    """Runs backups into one backup store."""

    def __init__(
        self,
        kube: KubeClient,
        catalog: BackupCatalog,
        *,
        workdir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        progress: Callable[[int, int], None] | None = None,
        echo: Callable[[str, str], None] | None = None,
    ) -> None:
        self._kube = kube
        self._catalog = catalog
        self._workdir = workdir
        self._clock = clock or (lambda: datetime.now(UTC))
        self._progress = progress
        self._echo = echo

    async def run(
        self,
        backup: dict[str, Any],
        scope: BackupScope,
        resources: Sequence[ApiResource],
        *,
        ttl: timedelta,
        cluster_version: dict[str, Any] | None = None,
        warnings: Sequence[str] = (),
        volumes: VolumeOptions | None = None,
    ) -> BackupOutcome:
        """Back up and store; ``backup`` is the Backup object (metadata and spec) to complete.

        ``warnings`` are what planning found (a namespace that does not exist):
        they join the backup's results and log.
        """
        manifest = copy.deepcopy(backup)
        name = manifest["metadata"]["name"]
        namespace = manifest["metadata"].get("namespace", "velero")
        started = self._clock()
        status: dict[str, Any] = {
            "version": 1,
            "formatVersion": FORMAT_VERSION,
            "phase": "InProgress",
            "startTimestamp": format_timestamp(started),
            "expiration": format_timestamp(started + ttl),
        }
        manifest["status"] = status
        manifest["metadata"].setdefault("creationTimestamp", format_timestamp(started))
        _annotate(manifest, cluster_version)
        results = Results()
        with tempfile.TemporaryDirectory(prefix="strongroom-backup-", dir=self._workdir) as scratch:
            tarball = Path(scratch) / f"{name}.tar.gz"
            log_path = Path(scratch) / f"{name}-logs.gz"
            with log_path.open("wb") as log_file:
                log_writer = LogWriter(log_file)
                run_log = RunLog(
                    log_writer, {"backup": f"{namespace}/{name}"}, clock=self._clock, echo=self._echo
                )
                run_log.info("Setting up backup log")
                for warning in warnings:
                    results.warnings.add_velero(warning)
                    run_log.warning(warning)
                tar_digest: FileDigest | None = None
                resource_list: dict[str, list[str]] = {}
                report: VolumeReport | None = None
                volume_work: VolumeBackups | None = None
                try:
                    volume_work = self._volume_work(manifest, results, run_log, volumes)
                    with (
                        tarball.open("wb") as tar_file,
                        BackupWriter(tar_file, mtime=started.timestamp()) as writer,
                    ):
                        if volume_work is not None and volumes is not None:
                            await volume_work.prepare(volumes.namespaces)
                        collector = Collector(
                            self._kube,
                            writer,
                            scope,
                            results,
                            run_log,
                            progress=self._progress,
                            volumes=volume_work,
                        )
                        try:
                            collected = await collector.run(resources)
                            if volume_work is not None:
                                report = await volume_work.finish()
                        except BaseException:
                            if volume_work is not None:
                                await volume_work.abort()
                            raise
                        written = writer.close()
                    tar_digest = FileDigest(written.sha256, written.size)
                    resource_list = written.resource_list
                    total = collected.items + results.errors.count()
                    status["progress"] = {"totalItems": total, "itemsBackedUp": collected.items}
                    if report is not None:
                        _volume_status(status, report)
                    status["phase"] = "PartiallyFailed" if not results.errors.is_empty() else "Completed"
                    run_log.info(
                        f"Backed up a total of {collected.items} items",
                        resources=len(collected.resources),
                    )
                except StrongroomError as exc:
                    status["phase"] = "Failed"
                    status["failureReason"] = exc.message
                    results.errors.add_velero(exc.message)
                    run_log.error(f"Backup failed: {exc.message}")
                status["completionTimestamp"] = format_timestamp(self._clock())
                status["errors"] = results.errors.count()
                status["warnings"] = results.warnings.count()
                if status["warnings"] == 0:
                    del status["warnings"]
                if status["errors"] == 0:
                    del status["errors"]
                run_log.info(
                    "Backup completed" if status["phase"] != "Failed" else "Backup failed",
                    phase=status["phase"],
                )
                run_log.close()
            files: dict[str, bytes | Path] = {}
            digests: dict[str, FileDigest] = {}
            layout = self._catalog.layout
            if tar_digest is not None:
                files[layout.backup_contents(name)] = tarball
                digests[layout.backup_contents(name)] = tar_digest
                files[layout.backup_resource_list(name)] = encode_resource_list(resource_list)
                for side_file in _EMPTY_SIDE_FILES:
                    files[getattr(layout, side_file)(name)] = _EMPTY_LIST
                if report is not None:
                    files.update(_volume_files(layout, name, report))
            files[layout.backup_log(name)] = log_path
            files[layout.backup_results(name)] = encode_results(results)
            try:
                await self._catalog.store_backup(name, files=files, metadata=manifest, digests=digests)
            except StorageError as exc:
                status["phase"] = "Failed"
                status["failureReason"] = f"storing the backup failed: {exc.message}"
                _log.error("storing backup %s failed: %s", name, exc.message)
                return BackupOutcome(manifest, results, stored=False)
        return BackupOutcome(manifest, results, stored=True)

    def _volume_work(
        self,
        manifest: dict[str, Any],
        results: Results,
        run_log: RunLog,
        volumes: VolumeOptions | None,
    ) -> VolumeBackups | None:
        if volumes is None:
            return None
        extra: dict[str, Any] = {}
        if volumes.fs_backup_timeout is not None:
            extra["fs_backup_timeout"] = volumes.fs_backup_timeout
        return VolumeBackups(
            self._kube,
            volumes.discovery,
            manifest,
            results,
            run_log,
            repositories=volumes.repositories,
            hooks=self._hooks(manifest, volumes, run_log) if volumes.hooks else None,
            default_to_fs_backup=volumes.default_to_fs_backup,
            snapshot_locations=volumes.snapshot_locations,
            images=ImageStreamCopies(volumes.images, results, run_log) if volumes.images else None,
            **extra,
        )

    def _hooks(self, manifest: dict[str, Any], volumes: VolumeOptions, run_log: RunLog) -> BackupHookRunner:
        spec = Backup.from_manifest(manifest).spec
        return BackupHookRunner(
            spec.hooks,
            KubeExecutor(self._kube),
            run_log,
            catalog=ResourceCatalog(volumes.discovery.resources),
        )


def _volume_status(status: dict[str, Any], report: VolumeReport) -> None:
    """Velero's status counters for snapshots and hooks (left out when zero, as Go's omitempty does)."""
    if report.volume_snapshots:
        status["volumeSnapshotsAttempted"] = len(report.volume_snapshots)
        completed = sum(
            1 for item in report.volume_snapshots if item["status"].get("phase") == PHASE_COMPLETED
        )
        if completed:
            status["volumeSnapshotsCompleted"] = completed
    if report.csi_attempted:
        status["csiVolumeSnapshotsAttempted"] = report.csi_attempted
        status["csiVolumeSnapshotsCompleted"] = report.csi_completed
    if report.hooks_attempted:
        hook_status = {"hooksAttempted": report.hooks_attempted}
        if report.hooks_failed:
            hook_status["hooksFailed"] = report.hooks_failed
        status["hookStatus"] = hook_status


def _volume_files(layout: Any, name: str, report: VolumeReport) -> dict[str, bytes | Path]:
    """The side files Velero stores for volume data; the empty ones stay as written above."""
    files: dict[str, bytes | Path] = {}
    for side_file, items in (
        ("backup_volume_snapshots", report.volume_snapshots),
        ("backup_pod_volume_backups", report.pod_volume_backups),
        ("backup_csi_volume_snapshots", report.csi_snapshots),
        ("backup_csi_volume_snapshot_contents", report.csi_contents),
        ("backup_csi_volume_snapshot_classes", report.csi_classes),
        ("backup_images", report.images),
    ):
        if items:
            files[getattr(layout, side_file)(name)] = _gzip_json(items)
    files[layout.backup_volume_info(name)] = _gzip_json(report.volume_infos)
    return files


def _gzip_json(document: Any) -> bytes:
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode() + b"\n", mtime=0)


def _annotate(manifest: dict[str, Any], cluster_version: dict[str, Any] | None) -> None:
    if not cluster_version:
        return
    annotations = manifest["metadata"].setdefault("annotations", {})
    if cluster_version.get("gitVersion"):
        annotations["velero.io/source-cluster-k8s-gitversion"] = cluster_version["gitVersion"]
    if cluster_version.get("major"):
        annotations["velero.io/source-cluster-k8s-major-version"] = str(cluster_version["major"])
    if cluster_version.get("minor"):
        annotations["velero.io/source-cluster-k8s-minor-version"] = str(cluster_version["minor"])


# Velero's encoder writes a nil list as JSON null, gzip'd the way Go does.
_EMPTY_LIST: Final = gzip.compress(b"null\n", mtime=0)
