"""Disaster recovery of the control plane, the path of cluster-restore.sh, with checks before every step.

On a recovery host the runbook stops the static pods by moving their
manifests away, moves etcd's data directory aside, restores the snapshot with
a new cluster token, puts the backed-up static pod resources back and starts a
single-member etcd; the other members are then added back one at a time. Every
path sits under ``host_root`` so the same code runs on a host (``/``) and in a
test's temporary directory, with real etcd processes.

Everything that can be checked is checked before the first file moves: the
snapshot verifies, the archive of static pod resources is sound, the data
directory holds nothing but etcd's ``member`` directory, the arguments agree.
Nothing is ever deleted: the old data directory and manifests are moved aside.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from strongroom.errors import ConflictError, StrongroomError, UnavailableError, UsageError
from strongroom.etcd.connection import EtcdTarget
from strongroom.etcd.members import add_learner, list_members, promote_when_ready
from strongroom.etcd.restore import RestorePlan, restore_data_dir
from strongroom.etcd.snapshot import member_info
from strongroom.etcd.staticpods import extract_archive
from strongroom.etcd.tools import EtcdTool

__all__ = ["STATIC_POD_MANIFESTS", "HostPaths", "Recovery", "data_dir_locked"]

STATIC_POD_MANIFESTS: Final = (
    "etcd-pod.yaml",
    "kube-apiserver-pod.yaml",
    "kube-controller-manager-pod.yaml",
    "kube-scheduler-pod.yaml",
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class HostPaths:
    """The host paths cluster-restore.sh uses, under ``root``."""

    root: Path
    data_dir: Path
    manifests: Path
    stopped: Path
    resources: Path
    backups: Path

    @classmethod
    def under(cls, root: Path, *, data_dir: str = "var/lib/etcd") -> HostPaths:
        return cls(
            root=root,
            data_dir=root / data_dir.lstrip("/"),
            manifests=root / "etc/kubernetes/manifests",
            stopped=root / "etc/kubernetes/manifests-stopped",
            resources=root / "etc/kubernetes/static-pod-resources",
            backups=root / "var/lib/etcd-backup",
        )


def data_dir_locked(data_dir: Path) -> bool:
    """Whether a process (etcd) still holds the write-ahead log's lock in ``data_dir``.

    etcd locks its WAL files (open-file-description locks where the kernel has
    them, flock otherwise); a lock we can take means no etcd uses the directory.
    """
    wal = data_dir / "member" / "wal"
    try:
        names = [n for n in os.listdir(wal) if n.endswith(".wal")]
    except OSError:
        return False
    for name in names:
        try:
            fd = os.open(wal / name, os.O_RDWR)
        except OSError:
            continue
        try:
            for lock, unlock in ((fcntl.lockf, fcntl.lockf), (fcntl.flock, fcntl.flock)):
                try:
                    lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return True
                unlock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return False


@dataclass
class Recovery:
    """One recovery host's restore: checked by ``preflight``, done by ``run``."""

    paths: HostPaths
    tool: EtcdTool
    plan: RestorePlan
    snapshot: Path
    resources_archive: Path | None
    target: EtcdTarget  # the local member's client URL, to see it stop and start
    say: Say
    skip_hash_check: bool = False
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # "static-pod-resources/<component>-pod-<N>"

    def preflight(self) -> None:
        """Everything that can be checked before a file moves."""
        if not self.paths.manifests.is_dir():
            raise UsageError(
                f"no static pod manifests directory at {self.paths.manifests}",
                hint="run this on a control-plane host, or set --host-root",
            )
        if (
            not (self.paths.manifests / "etcd-pod.yaml").exists()
            and not (self.paths.stopped / "etcd-pod.yaml").exists()
        ):
            raise UsageError(f"no etcd-pod.yaml in {self.paths.manifests} (nor in {self.paths.stopped})")
        if self.paths.data_dir.exists():
            extra = sorted(p.name for p in self.paths.data_dir.iterdir() if p.name != "member")
            if extra:
                raise ConflictError(
                    f"{self.paths.data_dir} holds more than etcd's member directory ({', '.join(extra)}); "
                    "nothing was changed",
                    hint="move those files away first",
                )
        if self.resources_archive is not None:
            from strongroom.etcd.staticpods import check_archive

            check_archive(self.resources_archive)

    def steps(self) -> list[str]:
        present = [m for m in STATIC_POD_MANIFESTS if (self.paths.manifests / m).exists()]
        steps = [
            f"stop the static pods by moving {', '.join(present) or 'no manifests'} from {self.paths.manifests} "
            f"to {self.paths.stopped}",
            f"wait until etcd has released {self.paths.data_dir} and {self.target.endpoints[0]} stops answering",
        ]
        if (self.paths.data_dir / "member").exists():
            steps.append(
                f"move {self.paths.data_dir / 'member'} aside to {self.paths.backups}/member-<timestamp>"
            )
        steps += self.plan.describe()
        if self.resources_archive is not None:
            steps.append(
                f"restore the static pod resources of {self.resources_archive.name} into {self.paths.resources}"
            )
        steps += [
            "put the static pod manifests back (control-plane ones from the restored revisions when present)",
            f"wait until etcd at {self.target.endpoints[0]} answers",
        ]
        return steps

    async def run(self, *, stop_timeout: float, start_timeout: float) -> None:
        self.preflight()
        self.stop_static_pods()
        await self.wait_stopped(stop_timeout)
        aside = self.move_data_aside()
        if aside is not None:
            self.say(f"moved the old data directory to {aside}")
        try:
            self.say(f"restoring {self.snapshot.name} into {self.paths.data_dir}")
            restore_data_dir(self.plan, self.snapshot, self.tool, skip_hash_check=self.skip_hash_check)
            if self.resources_archive is not None:
                self.restored = extract_archive(self.resources_archive, self.paths.root)
                self.say(f"restored static pod resources: {', '.join(self.restored)}")
        except StrongroomError as exc:
            back = f"move {aside} back to {self.paths.data_dir / 'member'}, then " if aside else ""
            raise type(exc)(
                exc.message,
                hint=f"nothing was deleted: to return to where you were, {back}"
                f"move the manifests back from {self.paths.stopped} to {self.paths.manifests}",
            ) from exc
        self.start_static_pods()
        await self.wait_started(start_timeout)

    def stop_static_pods(self) -> None:
        self.paths.stopped.mkdir(parents=True, exist_ok=True)
        for name in STATIC_POD_MANIFESTS:
            source = self.paths.manifests / name
            if not source.exists():
                continue
            dest = self.paths.stopped / name
            if dest.exists():
                # An earlier attempt already moved one here; keep it, never overwrite.
                dest = self.paths.stopped / f"{name}.{_stamp()}"
            source.rename(dest)
            self.moved.append((source, dest))
            self.say(f"stopped {name} (moved to {dest})")

    async def wait_stopped(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            locked = data_dir_locked(self.paths.data_dir)
            answering = await self._answering()
            if not locked and not answering:
                self.say("etcd has stopped")
                return
            if time.monotonic() > deadline:
                what = (
                    "still holds its data directory"
                    if locked
                    else f"still answers at {self.target.endpoints[0]}"
                )
                raise UnavailableError(
                    f"etcd {what} {timeout:.0f}s after its manifest was moved away; nothing else was changed",
                    hint=f"stop it, or put the manifests back from {self.paths.stopped}",
                )
            await asyncio.sleep(0.2)

    def move_data_aside(self) -> Path | None:
        member = self.paths.data_dir / "member"
        if not member.exists():
            return None
        self.paths.backups.mkdir(parents=True, exist_ok=True)
        dest = self.paths.backups / f"member-{_stamp()}"
        member.rename(dest)
        return dest

    def start_static_pods(self) -> None:
        self.paths.manifests.mkdir(parents=True, exist_ok=True)
        moved = {source.name: dest for source, dest in self.moved}
        for name in STATIC_POD_MANIFESTS:
            source = self._restored_manifest(name) if name != "etcd-pod.yaml" else None
            if source is None:
                source = moved.get(name) or (
                    self.paths.stopped / name if (self.paths.stopped / name).exists() else None
                )
            if source is None:
                continue
            dest = self.paths.manifests / name
            data = source.read_bytes()
            tmp = dest.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            os.chmod(tmp, 0o600)
            tmp.rename(dest)
            self.say(f"started {name} (from {source})")

    def _restored_manifest(self, name: str) -> Path | None:
        """The manifest of the revision the backup holds, as cluster-restore.sh takes it.

        The revision comes from the archive, never from the newest directory on
        the host: a rollout after the backup left newer revisions there.
        """
        component = name.removesuffix("-pod.yaml")
        for relative in self.restored:
            directory = relative.rsplit("/", 1)[-1]
            prefix, _, revision = directory.rpartition("-")
            if prefix == f"{component}-pod" and revision.isdigit():
                manifest = self.paths.root / "etc/kubernetes" / relative / name
                if manifest.is_file():
                    return manifest
        return None

    async def wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: str = ""
        while time.monotonic() < deadline:
            try:
                info = await member_info(self.target, self.target.endpoints[0], timeout=2.0)
                if info.leader or len(self.plan.initial_cluster.split(",")) > 1:
                    self.say(f"etcd is serving at {self.target.endpoints[0]} (revision {info.revision})")
                    return
                last = "no leader yet"
            except StrongroomError as exc:
                last = exc.message
            await asyncio.sleep(0.3)
        raise UnavailableError(
            f"the restored etcd did not start within {timeout:.0f}s ({last})",
            hint=f"look at the etcd container's log; the old data is in {self.paths.backups}",
        )

    async def _answering(self) -> bool:
        try:
            await member_info(self.target, self.target.endpoints[0], timeout=1.0)
        except StrongroomError:
            return False
        return True


async def grow(
    target: EtcdTarget,
    joiners: Sequence[tuple[str, str]],
    *,
    timeout: float,
    say: Say,
) -> None:
    """Add members back one at a time: learner, started by the administrator, promoted once caught up."""
    for name, peer_url in joiners:
        _, members = await list_members(target)
        if any(peer_url in m.peer_urls for m in members if not m.is_learner):
            say(f"{name} ({peer_url}) is already a voting member")
            continue
        learner = next((m for m in members if m.is_learner and peer_url in m.peer_urls), None)
        if learner is None:
            learner = await add_learner(target, [peer_url])
            say(f"added {name} as learner {learner.hex_id}")
        cluster = ",".join(
            [f"{m.name}={u}" for m in members if m.name and not m.is_learner for u in m.peer_urls]
            + [f"{name}={peer_url}"]
        )
        say(
            f"start {name} with an empty data directory and: --name={name} --initial-cluster={cluster} "
            f"--initial-advertise-peer-urls={peer_url} --initial-cluster-state=existing"
        )
        await promote_when_ready(target, learner.id, timeout=timeout, say=say)
        say(f"promoted {name}")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
