"""restic repositories: one per source namespace and location, created on demand, recreated when emptied.

Three things are kept in step:

* the repository itself, under ``<prefix>/restic/<namespace>`` of the
  location. Whether it exists is decided by asking the object store for its
  ``config`` object, never by reading restic's error text: a network or
  credentials failure must never lead to initialising a new repository over
  existing data. A repository whose ``config`` is gone (the bucket was
  emptied) is created again, and stale locks (of restic processes that died)
  are removed before every use;
* its password, random per location and kept in the Secret
  ``strongroom-repo-credentials`` of the server's namespace (one key per
  location). Velero uses one well-known password for every repository; a
  random one means a copy of the bucket alone does not open the data. The
  flip side: a cluster that lacks the Secret cannot read the repositories,
  which is said plainly with the fix;
* the ``BackupRepository`` resource (Velero's), whose phase shows
  administrators whether the repository is usable.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
import string
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from strongroom.errors import NotFoundError, StrongroomError, UsageError
from strongroom.kube import ApiResource, KubeAlreadyExists, KubeClient, KubeConflict, KubeNotFound
from strongroom.model import labels as velero_labels
from strongroom.storage import ObjectStore
from strongroom.volumes.location import RepositoryLocation
from strongroom.volumes.restic import Restic, ResticError, while_locked

__all__ = [
    "MAINTENANCE_FREQUENCY",
    "PASSWORD_SECRET",
    "Repositories",
    "RepositoryPasswords",
    "RepositoryResources",
]

_log = logging.getLogger(__name__)

PASSWORD_SECRET: Final = "strongroom-repo-credentials"
# Velero's default maintenance frequency of a restic repository.
MAINTENANCE_FREQUENCY: Final = "168h0m0s"
LABEL_NAMESPACE: Final = velero_labels.VOLUME_NAMESPACE_LABEL
LABEL_LOCATION: Final = velero_labels.STORAGE_LOCATION_LABEL
LABEL_TYPE: Final = velero_labels.REPOSITORY_TYPE_LABEL
_PASSWORD_BYTES = 32
# generateName's alphabet (no vowels, no look-alike digits), as the API server uses it.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Objects of a repository without config younger than this may be another agent's init in progress.
_INIT_GRACE = timedelta(minutes=2)
_CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class RepositoryResources:
    """The API types the repositories are recorded in (from discovery)."""

    repositories: ApiResource
    secrets: ApiResource


class RepositoryPasswords:
    """The per-location repository passwords in one Secret; created on first use, race-safe."""

    def __init__(self, kube: KubeClient, secrets_resource: ApiResource, namespace: str) -> None:
        self._kube = kube
        self._res = secrets_resource
        self._namespace = namespace

    async def get(self, location: str) -> str | None:
        """The password of ``location``'s repositories, None when this cluster has none."""
        secret = await self._kube.get(self._res, PASSWORD_SECRET, self._namespace)
        return _password(secret, location)

    async def get_or_create(self, location: str) -> str:
        """The password of ``location``; a new random one is stored when there is none yet.

        Two agents may try at once: the Secret's creation and the addition of
        a key are conditional, and the loser re-reads the winner's password.
        """
        for _ in range(_CONFLICT_RETRIES):
            secret = await self._kube.get(self._res, PASSWORD_SECRET, self._namespace)
            found = _password(secret, location)
            if found is not None:
                return found
            password = secrets.token_urlsafe(_PASSWORD_BYTES)
            encoded = base64.b64encode(password.encode()).decode("ascii")
            try:
                if secret is None:
                    await self._kube.create(self._res, self._new_secret(location, encoded), self._namespace)
                else:
                    patch = {
                        "metadata": {"resourceVersion": secret["metadata"]["resourceVersion"]},
                        "data": {location: encoded},
                    }
                    await self._kube.patch(self._res, PASSWORD_SECRET, patch, self._namespace)
            except (KubeAlreadyExists, KubeConflict, KubeNotFound):
                continue  # someone else wrote first (or deleted it): read again
            _log.info("created the repository password of location %s", location)
            return password
        raise StrongroomError(
            f"could not store the repository password of location {location} in Secret {PASSWORD_SECRET}: "
            "it kept changing underneath"
        )

    def _new_secret(self, location: str, encoded: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": PASSWORD_SECRET,
                "namespace": self._namespace,
                "labels": {"app.kubernetes.io/part-of": "strongroom"},
            },
            "type": "Opaque",
            "data": {location: encoded},
        }


def _password(secret: Mapping[str, Any] | None, location: str) -> str | None:
    if secret is None:
        return None
    value = (secret.get("data") or {}).get(location)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise UsageError(
            f"key {location!r} of Secret {PASSWORD_SECRET} is not valid base64",
            hint="restore the Secret from the cluster that created the repositories",
        ) from None


class _RepositoryLock:
    """What one process must not do at once on a repository.

    ``opening`` serialises the existence check and init (two backups of one
    namespace starting together must not both create the repository);
    backups and restores share the repository while maintenance (forget and
    prune) has it alone, as restic's own locks require.
    """

    def __init__(self) -> None:
        self.opening = asyncio.Lock()
        self._condition = asyncio.Condition()
        self._users = 0
        self._maintaining = False

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._condition:
            await self._condition.wait_for(lambda: not self._maintaining)
            self._users += 1
        try:
            yield
        finally:
            async with self._condition:
                self._users -= 1
                self._condition.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._condition:
            await self._condition.wait_for(lambda: not self._maintaining and self._users == 0)
            self._maintaining = True
        try:
            yield
        finally:
            async with self._condition:
                self._maintaining = False
                self._condition.notify_all()


class Repositories:
    """Opens (and creates) the restic repositories of one server namespace's locations.

    ``namespace`` is the server's (where the Secret and the BackupRepository
    resources live); ``scratch_dir`` holds restic's cache and CA files;
    ``environment`` is the base environment of restic processes (by default this process's own).
    """

    def __init__(
        self,
        kube: KubeClient,
        resources: RepositoryResources,
        namespace: str,
        *,
        scratch_dir: Path,
        restic_binary: str = "restic",
        environment: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._kube = kube
        self._res = resources
        self._namespace = namespace
        self._scratch = scratch_dir
        self._binary = restic_binary
        self._environment = None if environment is None else dict(environment)
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.passwords = RepositoryPasswords(kube, resources.secrets, namespace)
        self._locks: dict[tuple[str, str], _RepositoryLock] = {}

    def _lock(self, location: RepositoryLocation, namespace: str) -> _RepositoryLock:
        return self._locks.setdefault((location.name, namespace), _RepositoryLock())

    @contextlib.asynccontextmanager
    async def using(
        self, location: RepositoryLocation, namespace: str, *, create: bool = True
    ) -> AsyncIterator[Restic]:
        """The namespace's repository, ready, for one backup or restore (others may run beside it).

        ``create`` False (restores) turns a missing repository into NotFoundError.
        """
        lock = self._lock(location, namespace)
        async with lock.shared():
            yield await self.ensure_repository(location, namespace, create=create)

    async def ensure_repository(
        self, location: RepositoryLocation, namespace: str, *, create: bool = True
    ) -> Restic:
        """The namespace's repository in ``location``: created when missing, recorded Ready."""
        async with self._lock(location, namespace).opening:
            record = await self._record(location, namespace)
            try:
                restic = await self._open(location, namespace, create=create)
            except StrongroomError as exc:
                with contextlib.suppress(StrongroomError):  # the cause matters more than its record
                    await self._set_status(record, "NotReady", exc.message)
                raise
            await self._set_status(record, "Ready", "")
            return restic

    async def forget_snapshots(
        self, location: RepositoryLocation, namespace: str, snapshot_ids: Sequence[str]
    ) -> None:
        """Remove snapshots and then the data only they referenced (a backup's deletion).

        A repository that no longer exists has nothing to forget.
        """
        if not snapshot_ids:
            return
        lock = self._lock(location, namespace)
        async with lock.exclusive():
            try:
                restic = await self.ensure_repository(location, namespace, create=False)
            except NotFoundError:
                _log.info(
                    "restic repository of %s in %s is gone: nothing to forget", namespace, location.name
                )
                return
            await while_locked(
                lambda: restic.forget(snapshot_ids),
                what=f"forgetting snapshots of {namespace}",
                unlock=restic.unlock,
            )
            await while_locked(
                restic.prune, what=f"pruning the repository of {namespace}", unlock=restic.unlock
            )
        _log.info(
            "forgot %d snapshot(s) of namespace %s in location %s",
            len(snapshot_ids),
            namespace,
            location.name,
        )

    # -- the repository in the bucket -----------------------------------------

    def restic(self, location: RepositoryLocation, namespace: str, password: str) -> Restic:
        """A restic handle on the namespace's repository (no check that it exists)."""
        return Restic(
            location.restic_target(namespace, password, self._scratch),
            cache_dir=self._scratch / "restic-cache",
            binary=self._binary,
            environment=self._environment,
        )

    async def _open(self, location: RepositoryLocation, namespace: str, *, create: bool) -> Restic:
        # A location restic cannot reach is refused before the store is asked anything.
        location.check_restic_reachable()
        store = await asyncio.to_thread(location.open_store)
        config_key = location.config_key(namespace)
        url = location.repository_url(namespace)
        if await store.exists(config_key):
            password = await self.passwords.get(location.name)
            if password is None:
                raise UsageError(
                    f"the restic repository {url} exists, but this cluster has no password for it "
                    f"(no key {location.name!r} in Secret {self._namespace}/{PASSWORD_SECRET})",
                    hint=f"copy the Secret {PASSWORD_SECRET} from the cluster that created the repository "
                    f"into namespace {self._namespace} (kubectl get secret {PASSWORD_SECRET} -o yaml)",
                )
            # Stale locks are removed when one is in the way (`while_locked`), not before every use.
            return self.restic(location, namespace, password)
        if not create:
            raise NotFoundError(
                f"there is no restic repository at {url}",
                hint="the volume data of this backup is gone from the location (the bucket was emptied "
                "or the repository deleted); it cannot be restored",
            )
        password = await self.passwords.get_or_create(location.name)
        restic = self.restic(location, namespace, password)
        await self._clear_remains(store, location, namespace)
        try:
            await restic.init()
        except ResticError:
            if not await store.exists(config_key):
                raise
            # Another agent created it meanwhile; it is the same password (one Secret).
            _log.info("restic repository %s was created by another agent", url)
            return restic
        # Just created: no lock to clear and no snapshot to look for.
        restic.created = True
        return restic

    async def _clear_remains(self, store: ObjectStore, location: RepositoryLocation, namespace: str) -> None:
        """Delete what is left of a repository whose config is gone, so the new one starts clean.

        Recent objects may be another agent's init in progress (restic writes
        the key before the config) and are left alone.
        """
        prefix = location.repository_prefix(namespace)
        now = self._clock()
        stale: list[str] = []
        async for info in store.list(prefix):
            if now - info.last_modified > _INIT_GRACE:
                stale.append(info.key)
        if stale:
            _log.warning(
                "restic repository %s has no config: removing %d object(s) left of it",
                location.repository_url(namespace),
                len(stale),
            )
        for key in stale:
            await store.delete(key)

    # -- the BackupRepository resource ----------------------------------------

    async def _record(self, location: RepositoryLocation, namespace: str) -> dict[str, Any]:
        """The BackupRepository of the namespace and location, created (phase New) when absent.

        Agents on several nodes may create one at the same time; the oldest
        wins and the others delete theirs.
        """
        found = await self._records(location, namespace)
        if found:
            return found[0]
        created = await self._kube.create(
            self._res.repositories, self._new_record(location, namespace), self._namespace
        )
        await self._set_status(created, "New", "")
        found = await self._records(location, namespace)
        winner = found[0] if found else created
        if winner["metadata"]["name"] != created["metadata"]["name"]:
            with contextlib.suppress(KubeNotFound):
                await self._kube.delete(self._res.repositories, created["metadata"]["name"], self._namespace)
        return winner

    async def _records(self, location: RepositoryLocation, namespace: str) -> list[dict[str, Any]]:
        selector = f"{LABEL_NAMESPACE}={namespace},{LABEL_LOCATION}={location.name},{LABEL_TYPE}=restic"
        items = await self._kube.list_all(
            self._res.repositories, namespace=self._namespace, label_selector=selector
        )
        return sorted(
            items,
            key=lambda item: (
                str(item["metadata"].get("creationTimestamp") or ""),
                str(item["metadata"]["name"]),
            ),
        )

    def _new_record(self, location: RepositoryLocation, namespace: str) -> dict[str, Any]:
        suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
        name = _record_name(namespace, location.name, suffix)
        return {
            "apiVersion": f"{self._res.repositories.group_version}",
            "kind": "BackupRepository",
            "metadata": {
                "name": name,
                "namespace": self._namespace,
                "labels": {
                    LABEL_NAMESPACE: namespace,
                    LABEL_LOCATION: location.name,
                    LABEL_TYPE: "restic",
                },
            },
            "spec": {
                "volumeNamespace": namespace,
                "backupStorageLocation": location.name,
                "repositoryType": "restic",
                "resticIdentifier": location.repository_url(namespace),
                "maintenanceFrequency": MAINTENANCE_FREQUENCY,
            },
        }

    async def _set_status(self, record: Mapping[str, Any], phase: str, message: str) -> None:
        status = record.get("status") or {}
        if status.get("phase") == phase and (status.get("message") or "") == message:
            return
        body: dict[str, Any] = {"status": {"phase": phase, "message": message or None}}
        subresource = "status" if "status" in self._res.repositories.subresources else None
        try:
            await self._kube.patch(
                self._res.repositories,
                record["metadata"]["name"],
                body,
                self._namespace,
                subresource=subresource,
            )
        except KubeNotFound:
            _log.debug("BackupRepository %s is gone", record["metadata"]["name"])


def _record_name(namespace: str, location: str, suffix: str) -> str:
    """``<ns>-<location>-restic-<suffix>``, shortened to the 253 characters a name may have."""
    base = f"{namespace}-{location}-restic"
    allowed = set(string.ascii_lowercase + string.digits + "-.")
    base = "".join(c if c in allowed else "-" for c in base.lower())[: 253 - len(suffix) - 1]
    return f"{base}-{suffix}"
