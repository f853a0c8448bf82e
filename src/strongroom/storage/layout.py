"""Where every file of a backup store lives: Velero's bucket layout (backup format 1.1.0).

Velero, OADP and strongroom must find each other's backups in the same
bucket, so the keys are Velero's, taken from its ``pkg/persistence``
(``object_store_layout.go``, ``object_store.go``) and nowhere else in
strongroom: the rest of the engine asks this module for a key and never
builds one. Under the location's optional prefix::

    backups/<B>/velero-backup.json            the Backup object
    backups/<B>/<B>.tar.gz                    the resources tarball
    backups/<B>/<B>-logs.gz                   ... and the other per-backup files below
    restores/<R>/restore-<R>-logs.gz          ... and the other per-restore files below
    restic/<namespace>                        a restic repository (one per namespace)
    kopia/ plugins/ metadata/                 other tools' directories
    plugins/strongroom/etcd/snapshot_<ts>.db  etcd snapshots (``plugins/`` is a directory Velero allows)

Files of our own (checksums, later encryption metadata) go inside
``backups/<B>/``, where Velero ignores unknown names. No other top-level
directory may exist under the prefix: Velero then refuses the whole location,
and so does ``validate_top_level``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from strongroom.errors import StorageConfigError
from strongroom.storage.base import normalize_prefix

if TYPE_CHECKING:
    from strongroom.storage.base import ObjectStore

__all__ = ["BACKUP_FORMAT_VERSION", "VALID_TOP_LEVEL_DIRS", "Layout", "validate_top_level"]

BACKUP_FORMAT_VERSION = "1.1.0"

# Velero's subdirs map: the only directories allowed at the top of a prefix.
VALID_TOP_LEVEL_DIRS = frozenset({"backups", "restores", "restic", "kopia", "metadata", "plugins"})

# Velero names at most three offenders and counts the rest.
_MAX_NAMED = 3


@dataclass(frozen=True)
class Layout:
    """The keys of one backup store, relative to the object store it is read through.

    Give the location's prefix either to ``open_store`` (the store is then
    confined to it; use ``Layout()``) or here with a store opened at the
    bucket's root, never to both.
    """

    prefix: str = ""

    def __post_init__(self) -> None:
        # Velero trims slashes around the prefix; "a/b/" and "/a/b" mean "a/b".
        object.__setattr__(self, "prefix", normalize_prefix(self.prefix.strip("/")))

    @property
    def root(self) -> str:
        """The prefix as a directory ("" or ending in "/")."""
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def backups_dir(self) -> str:
        return f"{self.root}backups/"

    @property
    def restores_dir(self) -> str:
        return f"{self.root}restores/"

    @property
    def restic_dir(self) -> str:
        return f"{self.root}restic/"

    @property
    def kopia_dir(self) -> str:
        return f"{self.root}kopia/"

    @property
    def metadata_dir(self) -> str:
        return f"{self.root}metadata/"

    @property
    def plugins_dir(self) -> str:
        return f"{self.root}plugins/"

    @property
    def etcd_snapshots_dir(self) -> str:
        """etcd snapshots and their records, under ``plugins/`` so Velero still accepts the location."""
        return f"{self.plugins_dir}strongroom/etcd/"

    @property
    def revision(self) -> str:
        """``metadata/revision``: Velero before 1.2 rewrote it on every change so that syncing
        servers could skip unchanged locations; newer Velero neither writes nor reads it."""
        return f"{self.metadata_dir}revision"

    def backup_dir(self, backup: str) -> str:
        return f"{self.backups_dir}{_name(backup, 'backup')}/"

    def backup_metadata(self, backup: str) -> str:
        return f"{self.backup_dir(backup)}velero-backup.json"

    def backup_contents(self, backup: str) -> str:
        return self._backup_file(backup, ".tar.gz")

    def backup_log(self, backup: str) -> str:
        return self._backup_file(backup, "-logs.gz")

    def backup_results(self, backup: str) -> str:
        return self._backup_file(backup, "-results.gz")

    def backup_resource_list(self, backup: str) -> str:
        return self._backup_file(backup, "-resource-list.json.gz")

    def backup_volume_snapshots(self, backup: str) -> str:
        return self._backup_file(backup, "-volumesnapshots.json.gz")

    def backup_item_operations(self, backup: str) -> str:
        return self._backup_file(backup, "-itemoperations.json.gz")

    def backup_pod_volume_backups(self, backup: str) -> str:
        return self._backup_file(backup, "-podvolumebackups.json.gz")

    def backup_csi_volume_snapshots(self, backup: str) -> str:
        return self._backup_file(backup, "-csi-volumesnapshots.json.gz")

    def backup_csi_volume_snapshot_contents(self, backup: str) -> str:
        return self._backup_file(backup, "-csi-volumesnapshotcontents.json.gz")

    def backup_csi_volume_snapshot_classes(self, backup: str) -> str:
        return self._backup_file(backup, "-csi-volumesnapshotclasses.json.gz")

    def backup_volume_info(self, backup: str) -> str:
        return self._backup_file(backup, "-volumeinfo.json.gz")

    def backup_images(self, backup: str) -> str:
        """strongroom's own file: the internal images the backup keeps in ``plugins/images`` (Velero ignores it)."""
        return self._backup_file(backup, "-images.json.gz")

    def backup_checksums(self, backup: str) -> str:
        """strongroom's own file: checksums of every file of the backup (Velero ignores it)."""
        return f"{self.backup_dir(backup)}strongroom-checksums.json"

    def restore_dir(self, restore: str) -> str:
        return f"{self.restores_dir}{_name(restore, 'restore')}/"

    def restore_log(self, restore: str) -> str:
        return self._restore_file(restore, "logs.gz")

    def restore_results(self, restore: str) -> str:
        return self._restore_file(restore, "results.gz")

    def restore_resource_list(self, restore: str) -> str:
        return self._restore_file(restore, "resource-list.json.gz")

    def restore_item_operations(self, restore: str) -> str:
        return self._restore_file(restore, "itemoperations.json.gz")

    def restore_record(self, restore: str) -> str:
        """strongroom's own file: the Restore object of a local-mode restore (Velero keeps it only
        in the cluster and ignores unknown files under ``restores/<R>/``)."""
        return f"{self.restore_dir(restore)}strongroom-restore.json"

    def restore_volume_info(self, restore: str) -> str:
        # Velero names this one without the "restore-" prefix of its siblings.
        return f"{self.restore_dir(restore)}{restore}-volumeinfo.json.gz"

    def restic_repo(self, namespace: str) -> str:
        """The key prefix of the restic repository for a namespace's volumes (no trailing "/",
        as in Velero's repository identifier ``.../restic/<namespace>``)."""
        return f"{self.restic_dir}{_name(namespace, 'namespace')}"

    def backup_name(self, backup_dir: str) -> str:
        """The backup's name from one of the prefixes listed under ``backups_dir``."""
        if not backup_dir.startswith(self.backups_dir):
            raise StorageConfigError(f"{backup_dir!r} is not under {self.backups_dir!r}")
        return _name(backup_dir[len(self.backups_dir) :].rstrip("/"), "backup")

    def _backup_file(self, backup: str, suffix: str) -> str:
        return f"{self.backup_dir(backup)}{backup}{suffix}"

    def _restore_file(self, restore: str, suffix: str) -> str:
        return f"{self.restore_dir(restore)}restore-{restore}-{suffix}"


async def validate_top_level(store: ObjectStore, layout: Layout) -> None:
    """Raise StorageConfigError when the prefix holds a directory that is not Velero's.

    The same check and message as Velero's ``IsValid``: a bucket shared with
    other data needs a prefix of its own, or backups could be mixed with (or
    deleted along with) someone else's files.
    """
    found = await store.list_prefixes(layout.root)
    invalid = [
        name
        for name in (prefix[len(layout.root) :].rstrip("/") for prefix in found)
        if name not in VALID_TOP_LEVEL_DIRS
    ]
    if not invalid:
        return
    if len(invalid) > _MAX_NAMED:
        message = f"Backup store contains {len(invalid)} invalid top-level directories: [{' '.join([*invalid[:_MAX_NAMED], '...'])}]"
    else:
        message = f"Backup store contains invalid top-level directories: [{' '.join(invalid)}]"
    where = f"under the prefix {layout.prefix!r}" if layout.prefix else "at its top level"
    raise StorageConfigError(
        message,
        hint=(
            f"{store.location} holds data that is not a backup store {where}: give strongroom a prefix of its own "
            "(spec.objectStorage.prefix of the BackupStorageLocation, or "
            "spec.backupLocations[].velero.objectStorage.prefix of the DataProtectionApplication)"
        ),
    )


def _name(name: str, what: str) -> str:
    # A name becomes one path segment; anything else would address another
    # backup's files or escape the layout.
    if not name or "/" in name or name in (".", ".."):
        raise StorageConfigError(f"invalid {what} name {name!r}: it must be a single non-empty path segment")
    return name
