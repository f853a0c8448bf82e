"""Run one restore: check the backup whole, then create its items in Velero's order.

Nothing is created until the backup has passed every check: its metadata
says it can be restored, the tarball matches its recorded checksum, and a
full read finds a valid archive (a truncated or corrupt tarball fails here,
with the cluster untouched). Items are then spooled per resource to a local
scratch directory (memory stays bounded), and applied resource by resource
in priority order, the items of one resource in parallel. Definitions of
custom resources are waited for until the API server serves them. One bad
item is an error in the results, never the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

from strongroom.archive import ArchiveError, BackupReader, Results, encode_resource_list, encode_results
from strongroom.archive.runlog import RunLog
from strongroom.archive.sidecars import LogWriter
from strongroom.errors import StorageError, StrongroomError, UsageError
from strongroom.hooks import KubeExecutor, KubePodReader, RestoreExecHooks, RestoreHookSet
from strongroom.images.settings import ImagesSettings
from strongroom.kube import Discovery, KubeAlreadyExists, KubeClient, KubeError
from strongroom.model.filters import ResourceCatalog
from strongroom.model.resources import ApiResource
from strongroom.model.velero import Restore, format_timestamp
from strongroom.restore.actions import PVCS, PVS, ItemRef, apply_pv_renames
from strongroom.restore.compare import Outcome, compare_existing, render_diff
from strongroom.restore.images import IMAGESTREAMS, ImageStreamRestores
from strongroom.restore.plan import (
    Failed,
    Prepared,
    RestoreOptions,
    RestoreState,
    Skipped,
    namespace_object,
    prepare_item,
)
from strongroom.restore.priorities import DEFAULT_RESTORE_PRIORITIES, Priorities, order_resources
from strongroom.restore.volumes import (
    DEFAULT_RESTORE_HELPER_IMAGE,
    BackupVolumeData,
    VolumeRestores,
    hook_status,
    load_volume_data,
)
from strongroom.snapshots.native import SnapshotterSource
from strongroom.storage.catalog import BackupCatalog

__all__ = ["DryRunEntry", "RestoreOutcome", "RestoreRunner", "RestoreVolumeOptions"]

_log = logging.getLogger(__name__)

RESTORABLE_PHASES: Final = frozenset({"Completed", "PartiallyFailed"})
_CONCURRENCY: Final = 32
_CRD: Final = "customresourcedefinitions.apiextensions.k8s.io"
_NAMESPACES: Final = "namespaces"
# Items prepared before their creates run in parallel; bounds memory for large resources.
_BATCH: Final = 1000


@dataclass
class DryRunEntry:
    """What a dry run found for one item: create, skip (identical), update, or conflict (differs, policy none)."""

    action: str
    group_resource: str
    namespace: str | None
    name: str
    diff: str = ""
    reason: str = ""


@dataclass
class RestoreOutcome:
    restore: dict[str, Any]
    results: Results
    dry_run: list[DryRunEntry] = field(default_factory=list)
    # Why the log, results and record could not be stored in the location, if they could not.
    store_error: str | None = None

    @property
    def phase(self) -> str:
        return str(self.restore.get("status", {}).get("phase", ""))


@dataclass(frozen=True)
class RestoreVolumeOptions:
    """How volume data comes back and which hooks run (without it: data restores, no hooks)."""

    hooks: bool = True
    """Run the restore's hooks (spec.hooks and pod annotations)."""
    helper_image: str = DEFAULT_RESTORE_HELPER_IMAGE
    timeout: timedelta | None = None
    snapshotters: SnapshotterSource | None = None
    """Finds the VolumeSnapshotLocations of native snapshots (without it, those PVs fail to restore)."""
    images: ImagesSettings | None = None
    """With the openshift plugin: where the ImageStreams' internal images come from."""


@dataclass
class _Counters:
    total: int = 0
    restored: int = 0
    resource_list: dict[str, set[str]] = field(default_factory=dict)


class RestoreRunner:
    """Runs restores from one backup store into one cluster."""

    def __init__(
        self,
        kube: KubeClient,
        catalog: BackupCatalog,
        *,
        workdir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        progress: Callable[[int, int], None] | None = None,
        concurrency: int = _CONCURRENCY,
        crd_timeout: float = 60.0,
        priorities: Priorities = DEFAULT_RESTORE_PRIORITIES,
    ) -> None:
        self._kube = kube
        self._catalog = catalog
        self._workdir = workdir
        self._clock = clock or (lambda: datetime.now(UTC))
        self._progress = progress
        self._concurrency = concurrency
        self._crd_timeout = crd_timeout
        self._priorities = priorities

    async def check_backup(self, backup_name: str) -> dict[str, Any]:
        """The backup's metadata, if it can be restored; UsageError otherwise."""
        backup = await self._catalog.read_backup_metadata(backup_name)
        phase = (backup.get("status") or {}).get("phase")
        if phase not in RESTORABLE_PHASES:
            raise UsageError(
                f"backup {backup_name!r} is in phase {phase or 'unknown'}; only Completed or PartiallyFailed backups can be restored"
            )
        return backup

    async def run(
        self,
        restore: dict[str, Any],
        options: RestoreOptions,
        *,
        dry_run: bool = False,
        store: bool = True,
        discovery: Discovery | None = None,
        warnings: Sequence[str] = (),
        volumes: RestoreVolumeOptions | None = None,
    ) -> RestoreOutcome:
        """Restore; ``store`` False keeps the log and results out of the location (a ReadOnly one).

        ``discovery`` is the cluster's, when the caller already read it to resolve the options;
        ``warnings`` are what resolving them found, for the results and the log.
        """
        manifest = copy.deepcopy(restore)
        name = manifest["metadata"]["name"]
        namespace = manifest["metadata"].get("namespace", "velero")
        backup_name = manifest["spec"]["backupName"]
        started = self._clock()
        status: dict[str, Any] = {"phase": "InProgress", "startTimestamp": format_timestamp(started)}
        manifest["status"] = status
        results = Results()
        counters = _Counters()
        entries: list[DryRunEntry] = []
        with tempfile.TemporaryDirectory(prefix="strongroom-restore-", dir=self._workdir) as scratch_dir:
            scratch = Path(scratch_dir)
            log_path = scratch / "restore-logs.gz"
            with log_path.open("wb") as log_file:
                run_log = RunLog(LogWriter(log_file), {"restore": f"{namespace}/{name}"}, clock=self._clock)
                for warning in warnings:
                    results.warnings.add_velero(warning)
                    run_log.warning(warning)
                try:
                    await self.check_backup(backup_name)
                    spool = await self._fetch_and_spool(backup_name, scratch, run_log)
                    volume_data = await load_volume_data(self._catalog, backup_name)
                    if discovery is None:
                        discovery = await self._kube.discover()
                    volume_work = None
                    if not dry_run:
                        volume_work = self._volume_work(
                            manifest, discovery, volume_data, options, results, run_log, volumes
                        )
                    try:
                        await self._apply(
                            spool,
                            discovery,
                            options,
                            results,
                            counters,
                            run_log,
                            entries,
                            dry_run,
                            volume_data,
                            volume_work,
                        )
                    except BaseException:
                        if volume_work is not None:
                            volume_work.abort()
                            with contextlib.suppress(Exception):
                                await volume_work.close()
                        raise
                    if volume_work is not None:
                        await volume_work.finish()
                        if volume_work.hook_results.attempted:
                            status["hookStatus"] = hook_status(volume_work.hook_results)
                    status["phase"] = "PartiallyFailed" if not results.errors.is_empty() else "Completed"
                except StrongroomError as exc:
                    status["phase"] = "Failed"
                    status["failureReason"] = exc.message
                    results.errors.add_velero(exc.message)
                    run_log.error(f"Restore failed: {exc.message}")
                status["completionTimestamp"] = format_timestamp(self._clock())
                status["progress"] = {"totalItems": counters.total, "itemsRestored": counters.restored}
                if results.errors.count():
                    status["errors"] = results.errors.count()
                if results.warnings.count():
                    status["warnings"] = results.warnings.count()
                run_log.info(
                    "restore completed" if status["phase"] != "Failed" else "restore failed",
                    phase=status["phase"],
                )
                run_log.close()
            if store and not dry_run:
                layout = self._catalog.layout
                resource_list = {
                    key: sorted(values) for key, values in sorted(counters.resource_list.items())
                }
                try:
                    await self._catalog.store_restore(
                        name,
                        files={
                            layout.restore_log(name): log_path.read_bytes(),
                            layout.restore_results(name): encode_results(results),
                            layout.restore_resource_list(name): encode_resource_list(resource_list),
                        },
                        record=manifest,
                    )
                except StorageError as exc:
                    # The cluster holds the restore already; only its record is missing.
                    _log.warning(
                        "the log and results of restore %s could not be stored: %s", name, exc.message
                    )
                    return RestoreOutcome(manifest, results, entries, store_error=exc.message)
        return RestoreOutcome(manifest, results, entries)

    # --- reading the backup --------------------------------------------------

    async def _fetch_and_spool(self, backup_name: str, scratch: Path, run_log: RunLog) -> dict[str, Path]:
        """Download and verify the tarball, then split its items into one file per resource."""
        layout = self._catalog.layout
        tarball = scratch / "backup.tar.gz"
        digest = await self._catalog.download(layout.backup_contents(backup_name), tarball)
        checksums = await self._catalog.read_checksums(backup_name)
        tar_name = layout.backup_contents(backup_name)[len(layout.backup_dir(backup_name)) :]
        expected = checksums.get(tar_name) if checksums else None
        if expected is not None and (expected.sha256 != digest.sha256 or expected.size != digest.size):
            raise ArchiveError(
                f"the tarball of backup {backup_name!r} does not match its recorded checksum "
                f"(sha256 {digest.sha256}, recorded {expected.sha256}); nothing was restored",
                hint=f"run `strongroom backup verify {backup_name}`",
            )
        run_log.info("Downloaded backup tarball", bytes=digest.size, sha256=digest.sha256)
        return await asyncio.to_thread(self._spool, tarball, scratch)

    def _spool(self, tarball: Path, scratch: Path) -> dict[str, Path]:
        spool_dir = scratch / "items"
        spool_dir.mkdir()
        files: dict[str, Path] = {}
        handles: dict[str, Any] = {}
        try:
            with tarball.open("rb") as handle:
                reader = BackupReader(handle)
                reader.verify()
                for item in reader.items(lambda path: path.version is None):
                    resource = str(item.group_resource)
                    out = handles.get(resource)
                    if out is None:
                        files[resource] = spool_dir / f"{len(files)}.jsonl"
                        out = handles[resource] = files[resource].open("w", encoding="utf-8")
                    out.write(json.dumps(item.object, separators=(",", ":")))
                    out.write("\n")
        finally:
            for out in handles.values():
                out.close()
        return files

    # --- applying --------------------------------------------------------------

    async def _apply(
        self,
        spool: dict[str, Path],
        discovery: Discovery,
        options: RestoreOptions,
        results: Results,
        counters: _Counters,
        run_log: RunLog,
        entries: list[DryRunEntry],
        dry_run: bool,
        volume_data: BackupVolumeData,
        volume_work: VolumeRestores | None,
    ) -> None:
        apply = _Apply(self, spool, discovery, options, results, counters, run_log, entries, dry_run)
        apply.state.volume_methods = volume_data.volume_methods()
        apply.volumes = volume_work
        await apply.run()

    def _volume_work(
        self,
        manifest: dict[str, Any],
        discovery: Discovery,
        data: BackupVolumeData,
        options: RestoreOptions,
        results: Results,
        run_log: RunLog,
        volumes: RestoreVolumeOptions | None,
    ) -> VolumeRestores:
        settings = volumes or RestoreVolumeOptions()
        hook_set: RestoreHookSet | None = None
        exec_hooks: RestoreExecHooks | None = None
        if settings.hooks:
            spec_hooks = Restore.from_manifest(manifest).spec.hooks
            catalog = ResourceCatalog(discovery.resources)
            hook_set = RestoreHookSet(spec_hooks, catalog)
            exec_hooks = RestoreExecHooks(
                hook_set, KubeExecutor(self._kube), KubePodReader(self._kube), run_log, catalog=catalog
            )
        extra: dict[str, Any] = {}
        if settings.timeout is not None:
            extra["timeout"] = settings.timeout
        return VolumeRestores(
            self._kube,
            discovery,
            manifest,
            data,
            results,
            run_log,
            hooks=hook_set,
            exec_hooks=exec_hooks,
            restore_pvs=options.restore_volumes,
            helper_image=settings.helper_image,
            snapshotters=settings.snapshotters,
            images=(
                ImageStreamRestores(
                    settings.images, results, run_log, namespace_mapping=options.namespace_mapping
                )
                if settings.images is not None
                else None
            ),
            **extra,
        )


class _Apply:
    """The state of one restore's apply pass: spool, discovery, namespaces ensured, dependencies."""

    def __init__(
        self,
        runner: RestoreRunner,
        spool: dict[str, Path],
        discovery: Discovery,
        options: RestoreOptions,
        results: Results,
        counters: _Counters,
        run_log: RunLog,
        entries: list[DryRunEntry],
        dry_run: bool,
    ) -> None:
        self.runner = runner
        self.kube = runner._kube
        self.spool = spool
        self.discovery = discovery
        self.options = options
        self.results = results
        self.counters = counters
        self.log = run_log
        self.entries = entries
        self.dry_run = dry_run
        self.service_accounts: dict[str, set[str]] = {}
        self.state = RestoreState(existing_service_accounts=lambda ns: self.service_accounts.get(ns, set()))
        self.ensured_namespaces: set[str] = set()
        self.index: dict[str, dict[tuple[str | None, str], dict[str, Any]]] = {}
        self.limit = asyncio.Semaphore(runner._concurrency)
        self.crds: list[dict[str, Any]] = []
        self.volumes: VolumeRestores | None = None

    async def run(self) -> None:
        backed_up_namespaces = self._load("namespaces") if "namespaces" in self.spool else {}
        self.backup_namespaces = {name: obj for (_, name), obj in backed_up_namespaces.items()}
        for resource in order_resources(self.spool, self.runner._priorities):
            if resource == "secrets":
                await self._learn_service_accounts()
            batch: list[Prepared] = []
            for item in self._read(resource):
                if resource == IMAGESTREAMS and self.volumes is not None and self.volumes.images is not None:
                    self.volumes.images.note(item)
                # Items this one needs (a claim's volume, a pod's claims) are prepared the
                # moment the planner names them, before it decides about this item, and
                # created first: the order Velero restores them in.
                dependencies: list[tuple[str, Prepared]] = []
                outcome = prepare_item(
                    item,
                    resource,
                    self.options,
                    self.state,
                    on_additional=partial(self._prepare_dependency, found=dependencies),
                )
                outcome = self._crd_for_custom_resources(item, resource, outcome)
                for dependency_resource, dependency in dependencies:
                    await self._apply_batch(dependency_resource, [dependency])
                if self._accept(item, resource, outcome):
                    assert isinstance(outcome, Prepared)
                    batch.append(outcome)
                    if resource == _CRD:
                        self.crds.append(outcome.object)
                if len(batch) >= _BATCH:
                    await self._apply_batch(resource, batch)
                    batch = []
            if batch:
                await self._apply_batch(resource, batch)
            if resource == _CRD:
                await self._wait_for_crds()

    def _read(self, resource: str) -> Iterator[dict[str, Any]]:
        with self.spool[resource].open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def _load(self, resource: str) -> dict[tuple[str | None, str], dict[str, Any]]:
        """Every item of one resource by namespace and name, for items needed by others."""
        cached = self.index.get(resource)
        if cached is None:
            cached = {}
            if resource in self.spool:
                for item in self._read(resource):
                    metadata = item.get("metadata") or {}
                    cached[(metadata.get("namespace") or None, str(metadata.get("name")))] = item
            self.index[resource] = cached
        return cached

    def _accept(self, item: dict[str, Any], resource: str, outcome: Prepared | Skipped | Failed) -> bool:
        metadata = item.get("metadata") or {}
        if isinstance(outcome, Skipped):
            self.log.info(
                f"Skipping item: {outcome.reason}",
                resource=resource,
                namespace=metadata.get("namespace"),
                name=metadata.get("name"),
            )
            return False
        if isinstance(outcome, Failed):
            self.counters.total += 1
            self.results.errors.add(outcome.namespace, outcome.message)
            self.log.error(
                outcome.message,
                resource=resource,
                namespace=metadata.get("namespace"),
                name=metadata.get("name"),
            )
            return False
        return True

    def _crd_for_custom_resources(
        self, item: dict[str, Any], resource: str, outcome: Prepared | Skipped | Failed
    ) -> Prepared | Skipped | Failed:
        """A definition left out only by the automatic cluster-scoped rule comes back with its resources.

        Velero restores no CRD in a restore of chosen namespaces, so the custom
        resources then fail on a cluster that lacks the definition; strongroom
        restores the definition of custom resources the restore includes
        (never with --include-cluster-resources=false; see docs/decisions).
        """
        if (
            resource != _CRD
            or not isinstance(outcome, Skipped)
            or self.options.include_cluster_resources is False
        ):
            return outcome
        name = str((item.get("metadata") or {}).get("name", ""))
        if (
            name not in self.spool
            or not self.options.resource_selected(name, True)
            or not self._any_selected(name)
        ):
            return outcome
        return prepare_item(item, resource, self.options, self.state, additional=True)

    def _any_selected(self, resource: str) -> bool:
        """Whether the restore takes at least one item of ``resource`` (its namespace and labels selected)."""
        for item in self._read(resource):
            metadata = item.get("metadata") or {}
            namespace = metadata.get("namespace")
            if namespace and not self.options.namespace_selected(namespace):
                continue
            if self.options.labels_selected(metadata.get("labels") or {}):
                return True
        return False

    def _prepare_dependency(self, ref: ItemRef, found: list[tuple[str, Prepared]]) -> None:
        """Prepare an item another one needs (and, first, what it needs in turn)."""
        resource, namespace, name = ref.group_resource, ref.namespace, ref.name
        item = self._load(resource).get((namespace, name))
        if item is None:
            where = f"{namespace}/{name}" if namespace else name
            message = f"unable to restore additional item {resource} {where}: not in the backup"
            self.results.warnings.add(namespace, message)
            self.log.warning(message)
            return
        outcome = prepare_item(
            item,
            resource,
            self.options,
            self.state,
            additional=True,
            on_additional=lambda nested: self._prepare_dependency(nested, found),
        )
        if self._accept(item, resource, outcome):
            assert isinstance(outcome, Prepared)
            found.append((resource, outcome))

    async def _learn_service_accounts(self) -> None:
        """The service accounts the cluster has where secrets go (token secrets of existing accounts are skipped)."""
        target = self.discovery.find("", "serviceaccounts")
        if target is None:
            return
        namespaces = {(item.get("metadata") or {}).get("namespace") for item in self._read("secrets")} - {
            None
        }
        for namespace in sorted(str(ns) for ns in namespaces):
            target_namespace = self.options.target_namespace(namespace)
            try:
                items = await self.kube.list_all(target, namespace=target_namespace)
            except KubeError:
                continue
            self.service_accounts[namespace] = {str(sa["metadata"]["name"]) for sa in items}

    async def _apply_batch(self, resource: str, batch: list[Prepared]) -> None:
        if not batch:
            return
        if batch[0].ensure_only:
            for item in batch:
                await self._ensure_namespace(item.name, item.object)
            return
        target = await self._target(resource, batch[0].object)
        self.counters.total += len(batch)
        if target is None:
            defined_here = any((crd.get("metadata") or {}).get("name") == resource for crd in self.crds)
            if self.dry_run and defined_here:
                # Its definition is created first in a real run; nothing can be compared yet.
                for item in batch:
                    self.entries.append(
                        DryRunEntry(
                            "create", resource, item.namespace, item.name, reason="after its definition"
                        )
                    )
                return
            message = f"the cluster does not serve {resource} at {batch[0].object.get('apiVersion')}"
            for item in batch:
                self.results.errors.add(item.namespace, f"error restoring {resource} {_ref(item)}: {message}")
                if self.dry_run:
                    self.entries.append(
                        DryRunEntry("error", resource, item.namespace, item.name, reason=message)
                    )
            self.log.error(message, resource=resource)
            return
        if target.namespaced:
            for namespace in sorted({item.namespace for item in batch if item.namespace}):
                await self._ensure_namespace(namespace, None)

        async def one(item: Prepared) -> None:
            async with self.limit:
                await self._apply_one(target, resource, item)
            if self.runner._progress is not None:
                self.runner._progress(self.counters.restored, self.counters.total)

        await asyncio.gather(*(one(item) for item in batch))

    async def _target(self, resource: str, sample: dict[str, Any]) -> ApiResource | None:
        found = _target_resource(self.discovery, resource, sample)
        if found is None and not self.dry_run:
            # A type appears once its definition is served (an aggregated API may be late).
            try:
                self.discovery = await self.kube.discover()
            except KubeError:
                return None
            found = _target_resource(self.discovery, resource, sample)
        return found

    async def _ensure_namespace(self, name: str, desired: dict[str, Any] | None) -> None:
        """Create a namespace that does not exist yet; an existing one is used as it is."""
        if name in self.ensured_namespaces:
            return
        self.ensured_namespaces.add(name)
        namespace_type = self.discovery.find("", _NAMESPACES)
        if namespace_type is None:
            return
        if desired is None:
            source = next((src for src, dst in self.options.namespace_mapping.items() if dst == name), name)
            desired = namespace_object(self.backup_namespaces.get(source), name)
        live = await self.kube.get(namespace_type, name)
        if self.dry_run:
            self.entries.append(
                DryRunEntry(
                    "create" if live is None else "skip",
                    _NAMESPACES,
                    None,
                    name,
                    reason="" if live is None else "namespace exists",
                )
            )
            return
        if live is not None:
            return
        try:
            await self.kube.create(namespace_type, desired)
            self.counters.restored += 1
            self.counters.total += 1
            self.counters.resource_list.setdefault("v1/Namespace", set()).add(f"{name}(created)")
            self.log.info("Restored item", resource=_NAMESPACES, name=name)
        except KubeAlreadyExists:
            return
        except KubeError as exc:
            self.counters.total += 1
            self.results.errors.add(name, f"error creating namespace {name}: {exc.message}")
            self.log.error(f"error creating namespace: {exc.message}", namespace=name)

    async def _wait_for_crds(self) -> None:
        if self.dry_run:
            return
        for crd in self.crds:
            name = (crd.get("metadata") or {}).get("name")
            spec = crd.get("spec") or {}
            group = spec.get("group")
            plural = (spec.get("names") or {}).get("plural")
            versions = [v.get("name") for v in spec.get("versions") or [] if v.get("served", True)]
            if not group or not plural or not versions:
                continue
            try:
                await self.kube.wait_served(group, versions[0], plural, timeout=self.runner._crd_timeout)
            except KubeError as exc:
                message = f"custom resource definition {name} is not served: {exc.message}"
                self.results.warnings.add(None, message)
                self.log.warning(message)
        self.discovery = await self.kube.discover()

    async def _apply_one(self, target: ApiResource, resource: str, item: Prepared) -> None:
        namespace = item.namespace if target.namespaced else None
        fields = {"resource": resource, "namespace": namespace, "name": item.name}
        try:
            if self.dry_run:
                live = await self.kube.get(target, item.name, namespace)
                self.entries.append(_dry_run_entry(resource, item, live, self.options))
                return
            body = item.object
            if resource == PVCS:
                # Its PV, restored just before as a dependency, may have become a clone under a new name.
                apply_pv_renames(body, self.state.renamed_pvs)
            if self.volumes is not None and resource == PVS and item.volume and item.volume.from_snapshot:
                body = await self.volumes.restore_native_volume(
                    item.source.name,
                    body,
                    rename_if_exists=item.volume.rename_if_exists,
                    renamed=self.state.renamed_pvs,
                )
            if self.volumes is not None:
                changed = await self.volumes.before_create(
                    resource, item.source.namespace, item.source.name, body
                )
                if changed is None:
                    self.log.info("Skipping item: its volume data is restored another way", **fields)
                    return
                body = changed
            try:
                created = await self.kube.create(target, body, namespace)
            except KubeAlreadyExists:
                await self._existing(target, resource, item)
                return
            if self.volumes is not None:
                await self.volumes.after_create(resource, item.source.namespace, item.source.name, created)
            if item.restore_status and isinstance(item.object.get("status"), dict):
                await self._restore_status(target, item, created)
            self.counters.restored += 1
            self._record(item, "created")
            self.log.info("Restored item", **fields)
        except StrongroomError as exc:
            # The API server's refusal, or an item the volume work could not prepare (a bad init hook).
            self._record(item, "failed")
            self.results.errors.add(namespace, f"error restoring {resource} {_ref(item)}: {exc.message}")
            self.log.error(f"error restoring item: {exc.message}", **fields)

    async def _restore_status(self, target: ApiResource, item: Prepared, created: dict[str, Any]) -> None:
        body = copy.deepcopy(created)
        body["status"] = item.object["status"]
        try:
            await self.kube.replace(
                target, body, item.namespace if target.namespaced else None, subresource="status"
            )
        except KubeError as exc:
            self.results.warnings.add(
                item.namespace, f"could not restore the status of {resource_ref(target, item)}: {exc.message}"
            )
            self.log.warning(f"could not restore status: {exc.message}", name=item.name)

    async def _existing(self, target: ApiResource, resource: str, item: Prepared) -> None:
        namespace = item.namespace if target.namespaced else None
        fields = {"resource": resource, "namespace": namespace, "name": item.name}
        live = await self.kube.get(target, item.name, namespace)
        if live is None:
            # Deleted between the create and the read: create once more.
            await self.kube.create(target, item.object, namespace)
            self.counters.restored += 1
            self._record(item, "created")
            self.log.info("Restored item", **fields)
            return
        decision = compare_existing(live, item.object, resource, self.options.existing_resource_policy)
        if decision.outcome is Outcome.SKIP_IDENTICAL:
            if decision.patch is not None:
                await self.kube.patch(target, item.name, decision.patch, namespace, patch_type="merge")
            # Velero counts an item found in place as restored (its progress is "items processed").
            self.counters.restored += 1
            self._record(item, "skipped")
            self.log.info("Skipping item: it already exists and is identical", **fields)
            return
        if decision.outcome is Outcome.UPDATE and decision.patch is not None:
            try:
                await self.kube.patch(target, item.name, decision.patch, namespace, patch_type="merge")
            except KubeError as exc:
                message = f"could not update existing {resource} {_ref(item)}: {exc.message}"
                self.results.warnings.add(namespace, message)
                self.log.warning(message, **fields)
                if decision.fallback_patch is not None:
                    await self.kube.patch(
                        target, item.name, decision.fallback_patch, namespace, patch_type="merge"
                    )
                self.counters.restored += 1
                self._record(item, "skipped")
                return
            self.counters.restored += 1
            self._record(item, "updated")
            self.log.info("Updated existing item", **fields)
            return
        self.counters.restored += 1
        self._record(item, "skipped")
        self.results.warnings.add(namespace, decision.message)
        self.log.warning(decision.message, **fields)

    def _record(self, item: Prepared, action: str) -> None:
        """Velero's restore resource list: ``<apiVersion>/<Kind>`` to ``ns/name(created|updated|skipped|failed)``."""
        key = f"{item.object.get('apiVersion')}/{item.object.get('kind')}"
        self.counters.resource_list.setdefault(key, set()).add(f"{_ref(item)}({action})")


def resource_ref(target: ApiResource, item: Prepared) -> str:
    return f"{target.group_resource} {_ref(item)}"


def _target_resource(discovery: Discovery, resource: str, sample: dict[str, Any]) -> ApiResource | None:
    """The served type to create an item at: the version it was backed up at."""
    version = str(sample.get("apiVersion", "")).rpartition("/")[2]
    for candidate in discovery.versions_of(resource):
        if candidate.version == version and candidate.creatable:
            return candidate
    return None


def _dry_run_entry(
    resource: str, item: Prepared, live: dict[str, Any] | None, options: RestoreOptions
) -> DryRunEntry:
    if live is None:
        return DryRunEntry("create", resource, item.namespace, item.name)
    decision = compare_existing(live, item.object, resource, options.existing_resource_policy)
    if decision.outcome is Outcome.SKIP_IDENTICAL:
        return DryRunEntry("skip", resource, item.namespace, item.name, reason="exists and is identical")
    diff = render_diff(live, item.object)
    if decision.outcome is Outcome.UPDATE:
        return DryRunEntry("update", resource, item.namespace, item.name, diff=diff)
    return DryRunEntry("conflict", resource, item.namespace, item.name, diff=diff, reason=decision.message)


def _ref(item: Prepared) -> str:
    return f"{item.namespace}/{item.name}" if item.namespace else item.name
